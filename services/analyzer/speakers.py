"""Who said each segment: the transcript the analysis engines read.

Stereo recordings arrive labelled (one party per channel, by the tenant's channel map). A mono
recording arrives with every segment ``unknown``: its segments are split into voices
(``diarization``), and each voice is labelled agent or customer here:

1. the tenant's configuration, when it says who speaks first on its mono recordings
   (``ChannelMap.mono_first_speaker``), decides;
2. otherwise what each voice says: an agent introduces themselves and their company, states
   why they call, asks discovery questions, presents the product and proposes next steps
   (``AGENT_CUES``); a customer answers the phone with a voicemail greeting, asks who is calling,
   declines, defers, objects, describes problems and asks about the price (``CUSTOMER_CUES``).
   The voice with the higher balance of agent cues is the agent;
3. when the cues do not settle it (their balances differ by less than ``LABEL_MARGIN``, as
   happens when misrecognition garbles them), the voice heard first is the agent: a recording
   usually starts with the agent's greeting, and a customer's "Hello?" is short enough to carry
   no weight. (The voice that says more was tried instead on the dev calls: worse.)

When the diarizer hears a single voice, the segments stay ``unknown``: one voice may be one
party talking alone, or two voices it cannot tell apart (two men of the same pitch, say), and
calling such a call one-sided would turn a real conversation into NO_CONVERSATION. The analysis
then says the speakers could not be told apart, as it does when diarization fails; the call is
never failed for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from schemas.analysis import ChannelMap, Speaker, TranscriptSegment
from services.analyzer.analysis import lexicon as lx
from services.analyzer.analysis.text import normalise
from services.analyzer.asr import AsrResult

from . import diarization

log = logging.getLogger(__name__)

#: The cue balance one voice must lead the other by for the cues alone to decide.
LABEL_MARGIN = 2.0

#: (cue, weight): what an agent says.
AGENT_CUES: tuple[tuple[lx.Pattern, float], ...] = (
    (lx.INTRODUCTION, 3.0),
    (lx.PURPOSE, 3.0),
    # Shorter forms that survive a misrecognised word ("this is molly can print out", "i am
    # called about your order"), and an inbound agent's greeting.
    (lx.rx(r"this is \w+", r"my name is"), 2.0),
    (lx.rx(r"(?:calling|called|call|ringing) (?:you )?(?:about|regarding|because|from|to follow up)"), 2.0),
    (lx.rx(r"how (?:can|may) i help"), 2.0),
    (lx.VALUE_STATEMENT, 1.0),
    (lx.CAPABILITY, 1.0),
    (lx.PITCH, 1.0),
    (lx.NEXT_STEP_ACTION, 1.0),
    (lx.AGENT_AGREES, 0.5),
    (lx.HANDLING_ACK, 0.5),
    (lx.rx(r"(?:how|what|who|when|which) (?:\w+ ){0,3}(?:do|does|did|are|is) (?:you|your)"), 1.5),
)
#: (cue, weight): what a customer says.
CUSTOMER_CUES: tuple[tuple[lx.Pattern, float], ...] = (
    (lx.VOICEMAIL, 4.0),
    (lx.rx(r"(?:you have|youve) reached", r"(?:nobody|no one) (?:\w+ )?available"), 3.0),
    (lx.CONTEXT_MISSING, 2.0),
    *((pattern, 2.0) for pattern, _, _ in lx.INTENT_CUES["NOT_INTERESTED"]),
    # Weak: an agent leaving a voicemail says "please call me back" too.
    *((pattern, 0.5) for pattern, _, _ in lx.INTENT_CUES["FOLLOW_UP"]),
    (lx.STEP_REQUEST, 0.5),
    (lx.NEEDS, 1.0),
    (lx.PAIN, 1.0),
    *((pattern, 1.0) for pattern in lx.OBJECTION_STRONG.values()),
    (lx.rx(r"how much", r"what (?:does|would|will) (?:it|this|that) cost"), 1.0),
)


def voice_score(texts: Sequence[str]) -> float:
    """How much more a voice sounds like the agent than like the customer (see the cues)."""
    score = 0.0
    for text in texts:
        norm = normalise(text)
        score += sum(w for p, w in AGENT_CUES if p.search(norm))
        score -= sum(w for p, w in CUSTOMER_CUES if p.search(norm))
    return score


def label_voices(
    segments: Sequence[TranscriptSegment], voices: Sequence[int], channels: ChannelMap
) -> list[TranscriptSegment]:
    """``segments`` with ``agent``/``customer`` speakers from their ``voices`` (0 = heard first);
    unchanged when only one voice was heard."""
    heard = sorted(set(voices))
    if len(heard) < 2:
        return list(segments)  # one voice: not told apart (see the module docstring)
    scores = {v: voice_score([s.text for s, x in zip(segments, voices, strict=True) if x == v]) for v in heard}
    configured = getattr(channels, "mono_first_speaker", None)
    if configured is not None:
        agent = 0 if configured == "agent" else 1
    elif abs(scores[0] - scores[1]) >= LABEL_MARGIN:
        agent = 0 if scores[0] > scores[1] else 1
    else:
        agent = 0
    names: dict[int, Speaker] = {agent: "agent", 1 - agent: "customer"}
    return [s.model_copy(update={"speaker": names[v]}) for s, v in zip(segments, voices, strict=True)]


def needs_diarization(asr: AsrResult) -> bool:
    """A transcript with words whose speakers are all unknown (a mono recording)."""
    return bool(asr.segments) and all(s.speaker == "unknown" for s in asr.segments)


async def attribute(path: str, asr: AsrResult, channels: ChannelMap) -> tuple[list[TranscriptSegment], str | None]:
    """The transcript with its speakers, and the diarizer used (None when none was needed or it
    failed). ``path`` is the recording ``asr`` came from."""
    if not needs_diarization(asr):
        return list(asr.segments), None
    try:
        # numpy and FFmpeg do the work and release the GIL: a thread keeps the loop free.
        voices = await asyncio.to_thread(diarization.diarize_file, path, asr.segments)
    except Exception:
        log.warning("mono diarization failed; speakers left unknown", exc_info=True)
        return list(asr.segments), None
    if len(set(voices)) < 2:
        return list(asr.segments), None
    return label_voices(asr.segments, voices, channels), f"{diarization.NAME} {diarization.VERSION}"
