"""The redaction set through speech: each utterance spoken by festival and recognised by the
default offline recogniser (PocketSphinx), then masked (``python -m eval.redaction --asr``).

Positions of the PII in a recognised text are unknown, so this condition counts masks: a
labelled span counts as recalled when the recognised text has at least as many masks of its
kind as the utterance has labels of that kind; every mask beyond the utterance's labels (all
masks, on a negative) is a false positive. Recognition results are cached under
``.local/eval/redaction-asr`` by text and recogniser, so only the first run pays (about 3 s an
utterance on one core).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from schemas.analysis import Redaction
from services.analyzer.asr import AsrRequest, AsrSettings, create_transcriber
from services.analyzer.redaction import Redactor
from tests.support import audio

from . import KINDS, Utterance

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CALLPIPE_STATE_DIR", ROOT / ".local")) / "eval" / "redaction-asr"


async def recognise(utterances: list[Utterance]) -> dict[str, str]:
    """The recognised text of each utterance (by id), from the cache where it is."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    transcriber = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for u in utterances:
                entry = CACHE / (hashlib.sha256(f"pocketsphinx/{u.text}".encode()).hexdigest()[:24] + ".json")
                if entry.exists():
                    out[u.id] = json.loads(entry.read_text())["text"]
                    continue
                if transcriber is None:
                    transcriber = create_transcriber(AsrSettings())
                call = audio.render_conversation([audio.Turn("customer", u.text)], stereo=False)
                path = Path(tmp) / f"{u.id}.wav"
                path.write_bytes(audio.encode(call, "wav"))
                result = await transcriber.transcribe(AsrRequest(str(path), ("unknown",), call.duration_s))
                text = " ".join(s.text for s in result.segments)
                entry.write_text(json.dumps({"text": text}))
                out[u.id] = text
    finally:
        if transcriber is not None:
            await transcriber.close()
    return out


@dataclass(frozen=True)
class AsrScore:
    labelled: dict[str, int]
    found: dict[str, int]
    false_spans: int
    utterances_with_false: int
    negatives: int
    negatives_with_false: int
    utterances: int


def score_recognised(utterances: list[Utterance], heard: dict[str, str]) -> AsrScore:
    labelled: Counter[str] = Counter()
    found: Counter[str] = Counter()
    false = utterances_with_false = negatives = negatives_with_false = 0
    for u in utterances:
        spans = Redactor.from_config(Redaction(enabled=True)).find(heard[u.id])
        masks = Counter(s.kind for s in spans)
        wanted = Counter(p.kind for p in u.pii)
        labelled.update(wanted)
        for kind, n in wanted.items():
            found[kind] += min(n, masks[kind])
        extra = max(0, len(spans) - sum(wanted.values()))
        false += extra
        utterances_with_false += extra > 0
        negatives += not u.pii
        negatives_with_false += (extra > 0) and not u.pii
    return AsrScore(
        labelled={k: labelled[k] for k in KINDS},
        found={k: found[k] for k in KINDS},
        false_spans=false,
        utterances_with_false=utterances_with_false,
        negatives=negatives,
        negatives_with_false=negatives_with_false,
        utterances=len(utterances),
    )


def run(utterances: list[Utterance]) -> AsrScore:
    return score_recognised(utterances, asyncio.run(recognise(utterances)))
