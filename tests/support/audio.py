"""Real synthesised speech for tests: festival voices, two-party calls, every accepted format.

Speech comes from festival's ``text2wave`` (Debian packages ``festival``, ``festvox-us-slt-hts``,
``festvox-kallpc16k``; ``deploy/local/stack.py install`` installs them). Everything is resampled
to one rate, ``SAMPLE_RATE`` = 16 kHz, 16-bit PCM: the rate offline ASR models are trained on
(PocketSphinx's English model, Whisper), wide-band enough for speech (a phone line carries
less), the kal voice's native rate, and an exact halving of the slt voice's 32 kHz.

Synthesised utterances and encoded files are cached under ``.local/test-audio/`` (or
``$CALLPIPE_STATE_DIR/test-audio``), keyed by a hash of their inputs and ``VERSION``, so only the
first run pays for synthesis. Every cache write is a temporary file renamed into place, so
parallel test processes never read half a file.

Typical use::

    if not tools_available():
        pytest.skip("festival is not installed")
    call = render_conversation(SCRIPTS["interested"], stereo=True)
    mp3 = encode(call, "mp3")
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import av

# Bump when anything that shapes the cached audio changes (trimming, levels, encoder settings).
VERSION = 1
SAMPLE_RATE = 16_000

Speaker = Literal["agent", "customer"]
Format = Literal["mp3", "wav", "aac", "m4a", "mp4"]
FORMATS: tuple[Format, ...] = ("mp3", "wav", "aac", "m4a", "mp4")

FEMALE = "cmu_us_slt_arctic_hts"  # US English, HTS statistical voice, natively 32 kHz
MALE = "kal_diphone"  # US English, diphone voice, natively 16 kHz
MALE_2 = "ked_diphone"  # another US English male diphone voice, for two voices of the same pitch
# Different voices on the two sides, so a mono mix still has two distinguishable speakers.
DEFAULT_VOICES: Mapping[Speaker, str] = {"agent": MALE, "customer": FEMALE}

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("CALLPIPE_STATE_DIR", ROOT / ".local")) / "test-audio"
VOICE_DIRS = (Path("/usr/share/festival/voices"),)

# Below this an utterance's edge counts as silence (about -50 dBFS); festival pads every
# utterance with a few hundred ms of it, which would blur the turn timings.
_TRIM_THRESHOLD = 100
_TRIM_MARGIN_S = 0.03
# Utterances are peak-normalised so the two voices (which festival renders at different
# levels) are equally loud, with headroom for lossy codecs' overshoot.
_PEAK = int(32767 * 10 ** (-3 / 20))
_SYNTH_TIMEOUT_S = 120
# (muxer, encoder, bit rate per channel): 32 kbit/s per channel is ample for 16 kHz speech and
# what call recorders typically use.
_ENCODINGS: Mapping[str, tuple[str, str, int | None]] = {
    "mp3": ("mp3", "libmp3lame", 32_000),
    "wav": ("wav", "pcm_s16le", None),
    "aac": ("adts", "aac", 32_000),
    "m4a": ("ipod", "aac", 32_000),
    "mp4": ("mp4", "aac", 32_000),
}
_VIDEO_ENCODER = "mpeg4"  # FFmpeg's own MPEG-4 part 2: always in PyAV's wheels, deterministic


class AudioToolsMissing(RuntimeError):
    """festival or one of its voices is not installed."""


@dataclass(frozen=True)
class Turn:
    """One uninterrupted utterance of one party."""

    speaker: Speaker
    text: str


class TimedTurn(NamedTuple):
    """A turn and where it lies in the rendered call, in seconds from the start."""

    speaker: Speaker
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class RenderedCall:
    """Interleaved signed 16-bit little-endian PCM and where each turn lies in it."""

    pcm: bytes
    sample_rate: int
    channels: int
    turns: tuple[TimedTurn, ...] = ()

    @property
    def frames(self) -> int:
        return len(self.pcm) // (2 * self.channels)

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def samples(self) -> array[int]:
        """All samples, interleaved (a fresh copy)."""
        return _from_le(self.pcm)

    def channel(self, index: int, start_s: float = 0.0, end_s: float | None = None) -> array[int]:
        """The samples of one channel (0 = left = agent on stereo), optionally of a time span."""
        if not 0 <= index < self.channels:
            raise IndexError(f"channel {index} of {self.channels}")
        first = max(0, round(start_s * self.sample_rate))
        last = self.frames if end_s is None else min(self.frames, round(end_s * self.sample_rate))
        return self.samples[first * self.channels + index : last * self.channels : self.channels]

    @property
    def transcript(self) -> str:
        """What is said, in order, as one string (the reference for word error rate)."""
        return " ".join(t.text for t in self.turns)

    def content_hash(self) -> str:
        """A digest of the audio itself: the cache key of its encodings."""
        h = hashlib.sha256(self.pcm)
        h.update(f"{self.sample_rate}/{self.channels}".encode())
        return h.hexdigest()


@dataclass(frozen=True)
class DecodedAudio:
    """What PyAV makes of an encoded file: the first audio stream, decoded completely."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    pcm: bytes

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / (2 * self.channels * self.sample_rate)

    def as_call(self) -> RenderedCall:
        """The decoded audio as a ``RenderedCall`` without turn timings, to slice channels."""
        return RenderedCall(self.pcm, self.sample_rate, self.channels)


# --------------------------------------------------------------------------------------------
# Availability and cache
# --------------------------------------------------------------------------------------------


def _voice_installed(voice: str) -> bool:
    return any(d.is_dir() and any(d.glob(f"*/{voice}")) for d in VOICE_DIRS)


@functools.cache
def tools_available(voices: tuple[str, ...] = (MALE, FEMALE)) -> bool:
    """Whether speech can be synthesised here: ``text2wave`` and every voice in ``voices``."""
    if shutil.which("text2wave") is None:
        return False
    if not all(_voice_installed(v) for v in voices):
        return False
    try:
        av.codec.Codec("libmp3lame", "w")
        av.codec.Codec("aac", "w")
    except av.codec.codec.UnknownCodecError:
        return False
    return True


def _key(*parts: object) -> str:
    blob = json.dumps([VERSION, *parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


@contextlib.contextmanager
def _atomic_path(final: Path) -> Iterator[Path]:
    """A temporary path beside ``final`` that becomes ``final`` (atomically) on success."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _cached(name: str, produce: Callable[[Path], None]) -> bytes:
    """The cached file ``name``, produced into a temporary path by ``produce`` on a miss."""
    path = CACHE_DIR / name
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes()
    with _atomic_path(path) as tmp:
        produce(tmp)
        data = tmp.read_bytes()
    return data


# --------------------------------------------------------------------------------------------
# PCM helpers
# --------------------------------------------------------------------------------------------


def _from_le(pcm: bytes) -> array[int]:
    a = array("h", pcm)
    if sys.byteorder == "big":
        a.byteswap()
    return a


def _to_le(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def rms(samples: Sequence[int]) -> float:
    """Root mean square of 16-bit samples, 0..32768."""
    if not samples:
        return 0.0
    return math.sqrt(math.fsum(x * x for x in samples) / len(samples))


def dbfs(samples: Sequence[int]) -> float:
    """RMS level relative to full scale; -inf for digital silence."""
    level = rms(samples)
    return 20 * math.log10(level / 32768) if level > 0 else -math.inf


def _wav_bytes(pcm: bytes, sample_rate: int, channels: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


def _read_wav(data: bytes) -> tuple[bytes, int, int]:
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.readframes(w.getnframes()), w.getframerate(), w.getnchannels()


def _resample(data: bytes, rate: int, layout: str) -> bytes:
    """Any audio PyAV reads, as packed s16 PCM at ``rate`` with ``layout``."""
    out = bytearray()
    resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
    channels = 1 if layout == "mono" else 2
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            for r in resampler.resample(frame):
                out += bytes(r.planes[0])[: r.samples * 2 * channels]
    for r in resampler.resample(None):
        out += bytes(r.planes[0])[: r.samples * 2 * channels]
    return bytes(out)


def _trim_and_normalise(samples: array[int], rate: int) -> array[int]:
    start = next((i for i, x in enumerate(samples) if abs(x) > _TRIM_THRESHOLD), None)
    if start is None:
        return array("h")
    end = next(i for i in range(len(samples) - 1, -1, -1) if abs(samples[i]) > _TRIM_THRESHOLD)
    margin = round(_TRIM_MARGIN_S * rate)
    cut = samples[max(0, start - margin) : min(len(samples), end + 1 + margin)]
    peak = max(abs(x) for x in cut)
    gain = _PEAK / peak
    return array("h", (round(x * gain) for x in cut))


# --------------------------------------------------------------------------------------------
# Synthesis and rendering
# --------------------------------------------------------------------------------------------


def _festival_wav(text: str, voice: str) -> bytes:
    if not re.fullmatch(r"[a-z0-9_]+", voice):
        # The name is spliced into a Lisp expression.
        raise ValueError(f"not a festival voice name: {voice!r}")
    if not tools_available((voice,)):
        raise AudioToolsMissing(f"text2wave or the festival voice {voice} is not installed")
    with tempfile.TemporaryDirectory(prefix="callpipe-tts-") as tmp:
        out = Path(tmp) / "speech.wav"
        r = subprocess.run(
            ["text2wave", "-eval", f"(voice_{voice})", "-o", str(out)],
            input=text.encode("latin-1"),
            capture_output=True,
            timeout=_SYNTH_TIMEOUT_S,
            check=False,
        )
        # text2wave exits 0 even when festival fails (an unknown voice, say): no file then.
        if r.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
            detail = (r.stderr or r.stdout).decode("latin-1", "replace").strip()
            raise RuntimeError(f"text2wave failed for voice {voice}: {detail or 'no output'}")
        return out.read_bytes()


def synthesize(text: str, voice: str = FEMALE) -> array[int]:
    """``text`` spoken by ``voice``: mono samples at ``SAMPLE_RATE``, edges trimmed, normalised.

    Write numbers as words ("ten thousand dollars"); festival reads digits inconsistently.
    """

    def produce(path: Path) -> None:
        pcm = _resample(_festival_wav(text, voice), SAMPLE_RATE, "mono")
        speech = _trim_and_normalise(_from_le(pcm), SAMPLE_RATE)
        path.write_bytes(_wav_bytes(_to_le(speech), SAMPLE_RATE, 1))

    data = _cached(f"speech-{_key('speech', voice, text, SAMPLE_RATE)}.wav", produce)
    pcm, rate, channels = _read_wav(data)
    assert rate == SAMPLE_RATE and channels == 1, "stale speech cache entry"
    return _from_le(pcm)


def render_conversation(
    turns: Sequence[Turn],
    *,
    stereo: bool,
    gap_s: float = 0.4,
    voices: Mapping[Speaker, str] = DEFAULT_VOICES,
    lead_s: float = 0.3,
    tail_s: float = 0.3,
) -> RenderedCall:
    """A call with ``turns`` spoken in order, ``gap_s`` of silence between them.

    Stereo follows the call-centre convention: the agent on the left channel, the customer on
    the right, each channel silent while the other party speaks. Mono has both in one channel.
    """
    if gap_s < 0 or lead_s < 0 or tail_s < 0:
        raise ValueError("gaps must not be negative (overlapping speech is not modelled)")
    if not turns:
        raise ValueError("a conversation needs at least one turn")
    wanted = {(voices[t.speaker], t.text) for t in turns}
    # Each synthesis is a separate festival process: run a few at once on a cold cache.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        speech = dict(zip(wanted, pool.map(lambda vt: synthesize(vt[1], vt[0]), wanted), strict=True))

    rate = SAMPLE_RATE
    gap, pos = round(gap_s * rate), round(lead_s * rate)
    placed: list[tuple[Turn, int, array[int]]] = []
    for i, turn in enumerate(turns):
        if i:
            pos += gap
        utterance = speech[(voices[turn.speaker], turn.text)]
        placed.append((turn, pos, utterance))
        pos += len(utterance)
    total = pos + round(tail_s * rate)

    channels = 2 if stereo else 1
    tracks = [array("h", bytes(2 * total)) for _ in range(channels)]
    timings = []
    for turn, start, utterance in placed:
        track = tracks[0 if not stereo or turn.speaker == "agent" else 1]
        track[start : start + len(utterance)] = utterance
        timings.append(TimedTurn(turn.speaker, turn.text, start / rate, (start + len(utterance)) / rate))
    return RenderedCall(_interleave(tracks), rate, channels, tuple(timings))


def _interleave(tracks: Sequence[array[int]]) -> bytes:
    if len(tracks) == 1:
        return _to_le(tracks[0])
    out = array("h", bytes(2 * len(tracks[0]) * len(tracks)))
    for i, track in enumerate(tracks):
        out[i :: len(tracks)] = track
    return _to_le(out)


def render_silence(
    duration_s: float, *, stereo: bool = False, noise_dbfs: float | None = None, seed: int = 0
) -> RenderedCall:
    """``duration_s`` of digital silence, or of white noise at ``noise_dbfs`` RMS (seeded)."""
    channels = 2 if stereo else 1
    n = round(duration_s * SAMPLE_RATE) * channels
    if noise_dbfs is None:
        return RenderedCall(bytes(2 * n), SAMPLE_RATE, channels)
    sigma = 32768 * 10 ** (noise_dbfs / 20)
    rng = random.Random(seed)
    noise = array("h", (max(-32768, min(32767, round(rng.gauss(0.0, sigma)))) for _ in range(n)))
    return RenderedCall(_to_le(noise), SAMPLE_RATE, channels)


# --------------------------------------------------------------------------------------------
# Encoding, decoding, damaged inputs
# --------------------------------------------------------------------------------------------


def _audio_frames(call: RenderedCall, chunk: int = 1024) -> Iterator[av.AudioFrame]:
    layout = "stereo" if call.channels == 2 else "mono"
    step = chunk * 2 * call.channels
    for pts, offset in enumerate(range(0, len(call.pcm), step)):
        data = call.pcm[offset : offset + step]
        frame = av.AudioFrame(format="s16", layout=layout, samples=len(data) // (2 * call.channels))
        frame.planes[0].update(data)
        frame.sample_rate = call.sample_rate
        frame.pts = pts * chunk
        yield frame


def _encode_into(path: Path, call: RenderedCall, fmt: str, faststart: bool) -> None:
    muxer, codec, per_channel = _ENCODINGS[fmt]
    options = {"movflags": "+faststart"} if faststart else {}
    layout = "stereo" if call.channels == 2 else "mono"
    with av.open(str(path), "w", format=muxer, options=options) as out:
        stream = out.add_stream(codec, rate=call.sample_rate, layout=layout)
        assert isinstance(stream, av.audio.stream.AudioStream)
        if per_channel:
            stream.bit_rate = per_channel * call.channels
        for frame in _audio_frames(call):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def encode(call: RenderedCall, fmt: Format, *, faststart: bool = False) -> bytes:
    """``call`` as a complete file: mp3, wav, aac (raw ADTS), m4a or mp4 (AAC in MP4).

    ``faststart`` puts an M4A/MP4 file's index (moov) before the audio, as streaming servers
    do; by default it follows the audio, as most recorders write it.
    """
    if fmt not in _ENCODINGS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    faststart = faststart and fmt in ("m4a", "mp4")
    name = f"{fmt}-{_key('encode', fmt, faststart, call.content_hash())}.{fmt}"
    return _cached(name, lambda path: _encode_into(path, call, fmt, faststart))


#: What a telephone line carries: 8 kHz, one channel.
TELEPHONE_RATE = 8_000
Telephone = Literal["mulaw", "mp3"]


def _telephone_into(path: Path, call: RenderedCall, codec: Telephone, bit_rate: int) -> None:
    mono = _mono_mix(call)
    # PyAV's resampler low-passes before decimating, as a phone line's band limit would.
    resampler = av.AudioResampler(format="s16", layout="mono", rate=TELEPHONE_RATE)
    muxer, encoder = ("wav", "pcm_mulaw") if codec == "mulaw" else ("mp3", "libmp3lame")
    with av.open(str(path), "w", format=muxer) as out:
        stream = out.add_stream(encoder, rate=TELEPHONE_RATE, layout="mono")
        assert isinstance(stream, av.audio.stream.AudioStream)
        if codec == "mp3":
            stream.bit_rate = bit_rate
        for frame in _audio_frames(mono):
            for resampled in resampler.resample(frame):
                resampled.pts = None
                out.mux(stream.encode(resampled))
        for resampled in resampler.resample(None):
            resampled.pts = None
            out.mux(stream.encode(resampled))
        out.mux(stream.encode(None))


def _mono_mix(call: RenderedCall) -> RenderedCall:
    """Both channels summed into one (a stereo call's parties never overlap, so nothing clips)."""
    if call.channels == 1:
        return call
    left, right = call.channel(0), call.channel(1)
    mixed = array("h", (max(-32768, min(32767, a + b)) for a, b in zip(left, right, strict=True)))
    return RenderedCall(_to_le(mixed), call.sample_rate, 1, call.turns)


def telephone(call: RenderedCall, codec: Telephone = "mulaw", *, bit_rate: int = 16_000) -> bytes:
    """``call`` as telephone audio: mixed to mono, resampled to 8 kHz and encoded as G.711
    \u03bc-law in WAV (``"mulaw"``, what PBXs record) or as MP3 at ``bit_rate`` (``"mp3"``,
    16 kbit/s by default: what call recorders save to keep archives small)."""
    ext = "wav" if codec == "mulaw" else "mp3"
    name = f"tel-{codec}-{_key('telephone', codec, bit_rate, call.content_hash())}.{ext}"
    return _cached(name, lambda path: _telephone_into(path, call, codec, bit_rate))


def decode(data: bytes, *, strict: bool = True) -> DecodedAudio:
    """Decode the first audio stream of ``data`` completely, as packed s16 PCM.

    Raises ``av.FFmpegError`` when the data cannot be opened or decoded, ``ValueError`` when it
    holds no audio stream. With ``strict=False`` a decoding error after some audio ends the
    decoding instead, and what came before is returned (how far a damaged file plays).
    """
    out = bytearray()
    with av.open(io.BytesIO(data), "r") as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        channels, rate = ctx.channels, ctx.sample_rate
        layout = "stereo" if channels == 2 else "mono"
        resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames, None)
            except av.FFmpegError:
                if strict or not out:
                    raise
                frame = None
            for r in resampler.resample(frame):
                out += bytes(r.planes[0])[: r.samples * 2 * channels]
            if frame is None:
                break
        return DecodedAudio(container.format.name, ctx.name, rate, channels, bytes(out))


def truncated(data: bytes, fraction: float) -> bytes:
    """The first ``fraction`` (0 < fraction < 1) of ``data``: a download cut short."""
    if not 0 < fraction < 1:
        raise ValueError("fraction must be between 0 and 1")
    return data[: int(len(data) * fraction)]


def _video_into(path: Path, fmt: str, duration_s: float) -> None:
    fps, size = 10, 64
    muxer = _ENCODINGS[fmt][0]
    # The ipod muxer brands a file without audio "M4V "; an .m4a that merely lacks audio (what
    # the negative tests need) still says "M4A ".
    options = {"brand": "M4A "} if fmt == "m4a" else {}
    with av.open(str(path), "w", format=muxer, options=options) as out:
        stream = out.add_stream(_VIDEO_ENCODER, rate=fps)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(max(1, round(duration_s * fps))):
            frame = av.VideoFrame(size, size, "yuv420p")
            # A brightness ramp, so the frames differ and the encoder emits real data.
            for plane, value in zip(frame.planes, ((16 + 8 * i) % 236, 128, 128), strict=True):
                plane.update(bytes([value]) * plane.buffer_size)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def video_only(fmt: Literal["mp4", "m4a"] = "mp4", duration_s: float = 1.0) -> bytes:
    """An M4A/MP4 file with a single (MPEG-4 part 2) video track and no audio at all."""
    if fmt not in ("mp4", "m4a"):
        raise ValueError("video-only files are MP4 or M4A")
    name = f"video-{_key('video', fmt, duration_s, _VIDEO_ENCODER)}.{fmt}"
    return _cached(name, lambda path: _video_into(path, fmt, duration_s))


# --------------------------------------------------------------------------------------------
# Scripted sales calls (numbers as words: festival reads digits inconsistently)
# --------------------------------------------------------------------------------------------


def _agent(text: str) -> Turn:
    return Turn("agent", text)


def _customer(text: str) -> Turn:
    return Turn("customer", text)


SCRIPTS: Mapping[str, tuple[Turn, ...]] = {
    # An interested customer who asks about pricing and next steps.
    "interested": (
        _agent("Hi, this is Mark from Brightline Software. Do you have a couple of minutes?"),
        _customer("Sure, I have a few minutes."),
        _agent("We help sales teams review their calls. How do you review calls today?"),
        _customer("By hand, and it takes forever. This sounds really interesting. How much does it cost?"),
        _agent("It is fifty dollars per user per month, and the first month is free."),
        _customer("That sounds good. What are the next steps? Can you send me a proposal and book a demo?"),
        _agent("Of course. I will send the proposal today and book the demo for next Tuesday."),
        _customer("Great, I look forward to it."),
    ),
    # A clear refusal and a request to be removed from the list.
    "not_interested": (
        _agent("Hello, this is Mark from Brightline Software. I am calling about our call recording service."),
        _customer("We are not interested."),
        _agent("I understand. May I ask how you handle your sales calls today?"),
        _customer("No. We are not interested, please remove us from your list and do not call us again."),
        _agent("Of course. I will remove you from our list today. Sorry for the trouble."),
        _customer("Thank you. Goodbye."),
    ),
    # Budget (ten thousand dollars), authority, need and a timeline (end of March), all spoken.
    "budget_and_timeline": (
        _agent("Thanks for your time, Lisa. To propose the right package, may I ask about your budget?"),
        _customer("We have set aside ten thousand dollars for this project this year."),
        _agent("That works well. And when do you need the system up and running?"),
        _customer("We need it live by the end of March, before our new sales team starts."),
        _agent("Who else is involved in the decision?"),
        _customer("I decide together with our head of sales."),
        _agent("Perfect. With ten thousand dollars and a March deadline, the team plan fits best."),
    ),
    # The customer objects to the price, twice.
    "price_objection": (
        _agent("Based on what you told me, the team plan fits best. It costs two thousand dollars per month."),
        _customer("Honestly, it's too expensive for us. Two thousand dollars a month is more than we can pay."),
        _agent("I understand the price is a concern. Many customers start with the basic plan instead."),
        _customer("What does the basic plan cost?"),
        _agent("Five hundred dollars per month."),
        _customer("That is still too expensive. The price is the main problem for us."),
    ),
    # The agent states the agenda before anything else.
    "agenda_set": (
        _agent(
            "Good morning, this is Mark from Brightline. Here is our agenda for today. First, a few questions "
            "about your sales process. Then, a short demo. Finally, we agree on next steps. Sound good?"
        ),
        _customer("Yes, that sounds good."),
        _agent("Great. How many people are on your sales team?"),
        _customer("We have twelve sales people."),
        _agent("And how do you review their calls today?"),
        _customer("Our manager listens to a few recordings every week."),
    ),
    # The agent launches into features without saying what the call is for.
    "no_agenda": (
        _agent("Hi, Mark here from Brightline Software. So, our product records your sales calls."),
        _customer("Okay. Why are you calling me?"),
        _agent("Well, it has lots of features. There are dashboards, reports and alerts."),
        _customer("I see. What exactly do you want from me?"),
        _agent("I just wanted to tell you about it. It is really good."),
        _customer("Alright. I am busy right now. Maybe some other time."),
    ),
}
