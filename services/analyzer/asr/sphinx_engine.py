"""The embedded default engine: PocketSphinx with its bundled US-English model, offline.

Per channel: the endpointer (VAD) finds speech regions, each region is one decoder utterance,
and the words' frame alignment gives each segment's start and end in recording seconds (tighter
than the region, which carries up to half a second of lead-in). A region's words are split into
separate segments at pauses of ``split_gap_s`` or more. Empty hypotheses (noise the VAD took for
speech) produce nothing. PocketSphinx's word posteriors come out as 1.0 for every word with this
model (checked on right and wrong words alike), so ``confidence`` is None rather than a number
that means nothing.

Tuning (measured on the festival test calls, ``bench/asr_bench.py``): the stock decoder gives
about 16% WER at RTF 0.14 per core; a half-second endpointer window with a lower ratio (fewer
clipped first words) and slightly lower second- and third-pass language-model weights bring it
to about 13% at the same speed; ``maxhmmpf`` 10000 trims a little CPU without changing results.
Faster settings (``-ds 2``, ``-topn 2``, tighter beams, no flat pass) cost 2-15 points of WER for
at most 35% less CPU, which the RTF target (0.2) does not need.

One decoder per worker process serves both channels of a stereo call: a region is decoded when
it ends, the other channel's current region waits in memory (at most ``max_region_s``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pocketsphinx

from schemas.analysis import Speaker, TranscriptSegment

from .audio import PcmStream, SpeechRegion, SpeechSegmenter, VadSettings, check_deadline
from .base import AsrRequest, AsrResult, AsrSettings, WordTimes
from .errors import AsrError
from .pool import WorkerPool

log = logging.getLogger(__name__)

ENGINE = "pocketsphinx"
MODEL = "en-us"

DecoderValue = str | int | float | bool

#: Decoder options that differ from PocketSphinx's defaults (see the module docstring).
DEFAULT_DECODER_OPTIONS: Mapping[str, DecoderValue] = {
    "fwdflatlw": 7.0,  # default 8.5: second (flat-lexicon) pass language-model weight
    "bestpathlw": 8.0,  # default 9.5: lattice best-path language-model weight
    "maxhmmpf": 10_000,  # default 30000: cap on active HMMs per frame (CPU bound on hard frames)
}

# Pronunciation variants ("read(2)") and filler tokens ("<sil>", "[NOISE]", "++breath++").
_VARIANT = re.compile(r"\(\d+\)$")
_FRAME_RATE = 100  # PocketSphinx's default -frate: frames per second in word alignments


@dataclass(frozen=True)
class SphinxTuning:
    """Everything that shapes PocketSphinx's output, beyond the model itself."""

    decoder: Mapping[str, DecoderValue] = field(default_factory=lambda: dict(DEFAULT_DECODER_OPTIONS))
    vad: VadSettings = field(default_factory=VadSettings)
    #: A longer stretch of uninterrupted speech is cut into utterances of this length.
    max_region_s: float = 30.0
    #: A pause between words at least this long starts a new segment.
    split_gap_s: float = 0.3

    def fingerprint(self) -> str:
        """A short digest of the settings, recorded as part of the model name."""
        blob = json.dumps(
            {
                "decoder": dict(self.decoder),
                "vad": self.vad.__dict__,
                "max": self.max_region_s,
                "gap": self.split_gap_s,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Recognition:
    """What one file's recognition produced (crosses the process boundary)."""

    segments: list[TranscriptSegment]
    speech_s: float
    duration_s: float
    word_times: list[WordTimes] | None = None


def load_decoder(options: Mapping[str, DecoderValue]) -> Any:
    """A decoder with the bundled en-us acoustic model, language model and dictionary."""
    # Without explicit hmm/lm/dict, PocketSphinx uses the model its wheel ships.
    return pocketsphinx.Decoder(loglevel="ERROR", **dict(options))


def _is_word(token: str) -> bool:
    return not token.startswith(("<", "[", "+"))


class ChannelRecognizer:
    """Speech segments of one channel, fed PCM chunk by chunk."""

    def __init__(self, decoder: Any, speaker: Speaker, tuning: SphinxTuning) -> None:
        self._decoder = decoder
        self._speaker: Speaker = speaker
        self._tuning = tuning
        self._segmenter = SpeechSegmenter(tuning.vad, max_region_s=tuning.max_region_s)
        self.segments: list[TranscriptSegment] = []
        self.word_times: list[WordTimes] = []
        self.speech_s = 0.0

    def feed(self, pcm: bytes) -> None:
        """Consume a chunk of this channel's PCM."""
        for region in self._segmenter.feed(pcm):
            self._recognise(region)

    def finish(self) -> None:
        """End of stream: recognise what is still buffered."""
        for region in self._segmenter.finish():
            self._recognise(region)

    def _recognise(self, region: SpeechRegion) -> None:
        if not region.pcm:
            return
        decoder = self._decoder
        decoder.start_utt()
        # full_utt: the whole region at once, so the decoder may normalise over all of it.
        decoder.process_raw(region.pcm, full_utt=True)
        decoder.end_utt()
        words = [(_VARIANT.sub("", s.word), s.start_frame, s.end_frame) for s in decoder.seg() if _is_word(s.word)]
        if not words:
            return
        self.speech_s += region.end_s - region.start_s
        gap = round(self._tuning.split_gap_s * _FRAME_RATE)
        group: list[tuple[str, int, int]] = []
        for word in words:
            if group and word[1] - group[-1][2] > gap:
                self._emit(region, group)
                group = []
            group.append(word)
        self._emit(region, group)

    def _emit(self, region: SpeechRegion, words: Sequence[tuple[str, int, int]]) -> None:
        start = region.start_s + words[0][1] / _FRAME_RATE
        end = region.start_s + (words[-1][2] + 1) / _FRAME_RATE
        self.segments.append(
            TranscriptSegment(
                speaker=self._speaker,
                start=round(max(0.0, start), 2),
                end=round(max(start, min(end, region.end_s)), 2),
                text=" ".join(w for w, _, _ in words),
                confidence=None,
            )
        )
        self.word_times.append(
            tuple(
                (round(region.start_s + s / _FRAME_RATE, 2), round(region.start_s + (e + 1) / _FRAME_RATE, 2))
                for _, s, e in words
            )
        )


def transcribe_file(
    decoder: Any,
    path: str,
    channel_speakers: Sequence[Speaker],
    tuning: SphinxTuning | None = None,
    *,
    deadline: float | None = None,
) -> Recognition:
    """Recognise ``path`` with ``decoder`` (blocking). Raises ``AsrError``."""
    tuning = tuning or SphinxTuning()
    with PcmStream(path, channel_speakers) as stream:
        channels = [ChannelRecognizer(decoder, speaker, tuning) for speaker in stream.speakers]
        for chunks in stream:
            check_deadline(deadline)
            for channel, pcm in zip(channels, chunks, strict=True):
                channel.feed(pcm)
        for channel in channels:
            channel.finish()
        # Sorted as merge_segments sorts, each segment's word times kept beside it.
        timed = sorted(
            ((s, w) for c in channels for s, w in zip(c.segments, c.word_times, strict=True)),
            key=lambda sw: (sw[0].start, sw[0].end, sw[0].speaker),
        )
        return Recognition(
            segments=[s for s, _ in timed],
            speech_s=round(sum(c.speech_s for c in channels), 2),
            duration_s=round(stream.duration_s, 3),
            word_times=[w for _, w in timed],
        )


# -- worker process side ----------------------------------------------------------------------


class _WorkerState:
    """What one worker process loaded (module-level: the pool's initializer fills it)."""

    decoder: Any = None
    tuning: SphinxTuning = SphinxTuning()
    error: str | None = None


_worker = _WorkerState()


def _init_worker(tuning: SphinxTuning) -> None:
    # Never raise here: a failing initializer breaks the whole pool, and every later call would
    # look like a crash. The job reports the problem instead.
    try:
        _worker.decoder = load_decoder(tuning.decoder)
        _worker.tuning = tuning
    except Exception as exc:
        _worker.error = f"{type(exc).__name__}: {exc}"


def _job(path: str, channel_speakers: tuple[Speaker, ...], *, deadline: float) -> Recognition:
    if _worker.decoder is None:
        raise AsrError("asr_unavailable", f"PocketSphinx could not be loaded: {_worker.error or 'not initialised'}")
    check_deadline(deadline)
    return transcribe_file(_worker.decoder, path, channel_speakers, _worker.tuning, deadline=deadline)


# -- event-loop side --------------------------------------------------------------------------


def check_available(tuning: SphinxTuning = SphinxTuning()) -> None:
    """Raise ``asr_unavailable`` when the decoder cannot be built with these settings.

    Loads the model once in this process (about a second, a few tens of MB): call it at
    start-up, not per call.
    """
    try:
        load_decoder(tuning.decoder)
    except Exception as exc:
        raise AsrError("asr_unavailable", f"PocketSphinx cannot start: {type(exc).__name__}: {exc}") from exc


class PocketSphinxTranscriber:
    """PocketSphinx in a pool of ``settings.workers`` processes, one decoder each."""

    name = ENGINE

    def __init__(self, settings: AsrSettings, tuning: SphinxTuning = SphinxTuning(), *, grace_s: float = 10.0) -> None:
        self._settings = settings
        self.tuning = tuning
        self.pool = WorkerPool(workers=settings.workers, initializer=_init_worker, initargs=(tuning,), grace_s=grace_s)
        self.model = f"{MODEL}@{tuning.fingerprint()}"
        self.version = importlib.metadata.version("pocketsphinx")

    async def transcribe(self, request: AsrRequest) -> AsrResult:
        """Transcribe in a worker process within the call's time budget."""
        timeout = self._settings.timeout_for(request.duration_s)
        out = await self.pool.run(_job, request.path, tuple(request.channel_speakers), timeout_s=timeout)
        return AsrResult(
            segments=out.segments,
            speech_s=out.speech_s,
            duration_s=out.duration_s,
            engine=ENGINE,
            model=self.model,
            version=self.version,
            word_times=out.word_times,
        )

    async def close(self) -> None:
        """Stop the worker processes."""
        await self.pool.close()
