"""Mono diarization: which of the recognised segments of a one-channel recording were said by
the same voice.

A telephone call recorded in mono mixes both parties. After recognition, every segment (a run
of words without a pause) is assumed to be one speaker's; this module tells the segments of the
two voices apart, offline, with numpy only (no model, nothing downloaded):

1. **Features, streamed.** The file is decoded again as 16 kHz PCM (``asr.audio.PcmStream``,
   one second at a time). Every 10 ms, over a 25 ms window: 12 mel-cepstral coefficients from
   a 24-band filterbank limited to 200-3,600 Hz (so wideband and telephone audio give the same
   features), and the pitch (normalised autocorrelation, 70-350 Hz) when the frame is voiced.
   Frames are summed into the segment they fall in as they go, so memory holds one second of
   audio and a few numbers per segment, whatever the call's length.
2. **A voice per segment:** its mean cepstrum and its median-ish (mean log) pitch, each
   dimension standardised over the call; the pitch counts ``PITCH_WEIGHT`` times (it separates
   most pairs of voices on its own; the cepstrum separates voices of similar pitch).
3. **Two clusters:** weighted k-means (k = 2, weights = speech frames), started from the
   longest segment and the segment least like it, so the result is deterministic. Segments too
   short to characterise (under ``MIN_FRAMES`` speech frames) take the voice of the nearest
   longer segment in time.
4. **One voice or two:** two voices only when they explain the speech frames better than one
   by the Bayesian information criterion (diagonal Gaussians over cepstra and pitch,
   ``bic_gain``) and the smaller holds at least ``MIN_SHARE`` of the speech; otherwise everything
   is one voice (a message left to nobody, a one-sided call).

Who is the agent and who the customer is decided from what each voice says
(``services.analyzer.speakers``). Measured on the evaluation corpus's mono renderings
(``make eval``, BENCHMARKS.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from schemas.analysis import TranscriptSegment
from services.analyzer.asr.audio import SAMPLE_RATE, PcmStream

log = logging.getLogger(__name__)

NAME = "callpipe-voices"
#: Bump when a change can assign voices differently for the same input.
VERSION = "1"

FRAME = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms
N_FFT = 1024
N_MELS = 24
N_CEPS = 12
MEL_LOW_HZ = 200.0
MEL_HIGH_HZ = 3600.0
PITCH_LOW_HZ = 70.0
PITCH_HIGH_HZ = 350.0
VOICED_CORRELATION = 0.45
#: Frames quieter than this (RMS of 16-bit samples, about -50 dBFS) carry no voice.
SILENCE_RMS = 100.0
PITCH_WEIGHT = 3.0
MIN_FRAMES = 25
MIN_SHARE = 0.04
KMEANS_ROUNDS = 30
BIC_PENALTY = 0.6
BIC_FRAME_STRIDE = 10

Array = npt.NDArray[np.float64]


def _mel_filterbank() -> Array:
    def mel(hz: Array | float) -> Array:
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def hz(m: Array) -> Array:
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(MEL_LOW_HZ), mel(MEL_HIGH_HZ), N_MELS + 2))
    bins = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    bank = np.zeros((N_MELS, bins.size))
    for i in range(N_MELS):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        rising = (bins - lo) / (mid - lo)
        falling = (hi - bins) / (hi - mid)
        bank[i] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank


_MEL = _mel_filterbank()
_DCT = np.cos(np.pi / N_MELS * (np.arange(N_MELS) + 0.5)[None, :] * np.arange(1, N_CEPS + 1)[:, None])
_WINDOW = np.hamming(FRAME)
_LAG_MIN = int(SAMPLE_RATE / PITCH_HIGH_HZ)
_LAG_MAX = int(SAMPLE_RATE / PITCH_LOW_HZ)
_WINDOW_AUTO = (np.correlate(_WINDOW, _WINDOW, "full")[FRAME - 1 :] / float((_WINDOW**2).sum()))[
    _LAG_MIN : _LAG_MAX + 1
]


def frame_features(frames: Array) -> tuple[Array, Array]:
    """For frames (n x FRAME samples): cepstra (n x N_CEPS) and log pitch (n, NaN when
    unvoiced). One FFT per frame serves both: the power spectrum gives the cepstrum, and its
    inverse the autocorrelation, divided by the window's own (Boersma's correction) so that a
    low voice's long period is not penalised by the taper."""
    centred = (frames - frames.mean(axis=1, keepdims=True)) * _WINDOW
    spectrum = np.fft.rfft(centred, N_FFT)
    power = spectrum.real**2 + spectrum.imag**2
    ceps = np.log(power @ _MEL.T + 1e-3) @ _DCT.T
    auto = np.fft.irfft(power, N_FFT)[:, : _LAG_MAX + 1]
    normalised = auto[:, _LAG_MIN:] / (auto[:, :1] + 1e-9) / _WINDOW_AUTO
    best = normalised.argmax(axis=1)
    peak = normalised[np.arange(len(best)), best]
    pitch = np.where(peak >= VOICED_CORRELATION, np.log(SAMPLE_RATE / (best + _LAG_MIN)), np.nan)
    return ceps, pitch


@dataclass
class _Sums:
    """Running sums of one segment's speech frames."""

    frames: int = 0
    ceps: Array | None = None
    ceps_sq: Array | None = None
    voiced: int = 0
    pitch: float = 0.0
    pitch_sq: float = 0.0

    def add(self, ceps: Array, pitch: Array) -> None:
        self.frames += len(ceps)
        total, squares = ceps.sum(axis=0), (ceps**2).sum(axis=0)
        self.ceps = total if self.ceps is None else self.ceps + total
        self.ceps_sq = squares if self.ceps_sq is None else self.ceps_sq + squares
        has_pitch = ~np.isnan(pitch)
        self.voiced += int(has_pitch.sum())
        self.pitch += float(pitch[has_pitch].sum())
        self.pitch_sq += float((pitch[has_pitch] ** 2).sum())


class _Accumulator:
    """Frames of a streamed channel, summed into the segments they fall in."""

    def __init__(self, spans: Sequence[tuple[float, float]]) -> None:
        self.starts = np.array([s for s, _ in spans])
        self.ends = np.array([e for _, e in spans])
        self.sums = [_Sums() for _ in spans]
        self._carry = np.zeros(0)
        self._offset = 0  # samples consumed before the carry

    def feed(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        buffer = np.concatenate([self._carry, samples])
        n = 0 if len(buffer) < FRAME else 1 + (len(buffer) - FRAME) // HOP
        if n:
            frames = np.lib.stride_tricks.sliding_window_view(buffer, FRAME)[::HOP][:n]
            self._take(frames, self._offset)
        consumed = n * HOP
        self._carry = buffer[consumed:]
        self._offset += consumed

    def _take(self, frames: Array, offset: int) -> None:
        centres = (offset + np.arange(len(frames)) * HOP + FRAME / 2) / SAMPLE_RATE
        # The segment each frame falls in (segments do not overlap: one channel).
        index = np.searchsorted(self.starts, centres, side="right") - 1
        inside = (index >= 0) & (centres < self.ends[np.clip(index, 0, None)])
        if not inside.any():
            return
        candidates = frames[inside]
        loud = np.sqrt(np.mean(candidates**2, axis=1)) >= SILENCE_RMS
        if not loud.any():
            return
        ceps, pitch = frame_features(candidates[loud])
        where = index[inside][loud]
        for seg in np.unique(where):
            mine = where == seg
            self.sums[int(seg)].add(ceps[mine], pitch[mine])


def voice_vectors(sums: Sequence[_Sums]) -> tuple[Array, Array]:
    """Per segment: the standardised voice vector and its weight (speech frames)."""
    weights = np.array([s.frames for s in sums], dtype=np.float64)
    dims = N_CEPS + 1
    vectors = np.zeros((len(sums), dims))
    for i, s in enumerate(sums):
        if s.frames and s.ceps is not None:
            vectors[i, :N_CEPS] = s.ceps / s.frames
        vectors[i, N_CEPS] = s.pitch / s.voiced if s.voiced else np.nan
    usable = weights >= MIN_FRAMES
    for d in range(dims):
        column = vectors[:, d]
        known = usable & ~np.isnan(column)
        if known.sum() < 2:
            vectors[:, d] = 0.0
            continue
        mean, std = column[known].mean(), column[known].std() + 1e-6
        vectors[:, d] = np.where(np.isnan(column), 0.0, (column - mean) / std)
    vectors[:, N_CEPS] *= PITCH_WEIGHT
    return vectors, weights


def two_voices(vectors: Array, weights: Array) -> tuple[npt.NDArray[np.int64], float, float]:
    """Weighted 2-means over the usable segments: labels (-1 for unusable), the separation of
    the centroids in within-cluster standard deviations, the smaller cluster's share."""
    usable = np.flatnonzero(weights >= MIN_FRAMES)
    labels = np.full(len(vectors), -1, dtype=np.int64)
    if len(usable) < 2:
        labels[usable] = 0
        return labels, 0.0, 0.0
    x, w = vectors[usable], weights[usable]
    first = int(np.argmax(w))
    second = int(np.argmax(((x - x[first]) ** 2).sum(axis=1)))
    centres = x[[first, second]].copy()
    assign = np.zeros(len(x), dtype=np.int64)
    for _ in range(KMEANS_ROUNDS):
        distance = ((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        new = distance.argmin(axis=1)
        if _ and np.array_equal(new, assign):
            break
        assign = new
        for k in (0, 1):
            if (assign == k).any():
                centres[k] = np.average(x[assign == k], axis=0, weights=w[assign == k])
    labels[usable] = assign
    shares = np.array([w[assign == k].sum() for k in (0, 1)]) / w.sum()
    spread = np.sqrt(
        sum(float((w[assign == k] * ((x[assign == k] - centres[k]) ** 2).sum(axis=1)).sum()) for k in (0, 1))
        / w.sum()
        / x.shape[1]
    )
    separation = float(np.sqrt(((centres[0] - centres[1]) ** 2).mean()) / (spread + 1e-6))
    return labels, separation, float(shares.min())


def _log_variance(groups: Sequence[_Sums]) -> tuple[float, float]:
    """(frames x summed log variances, frames) of the pooled frames of ``groups``: one diagonal
    Gaussian over cepstra and pitch, the term the BIC compares."""
    n = sum(g.frames for g in groups)
    voiced = sum(g.voiced for g in groups)
    if n < 2 or voiced < 2:
        return 0.0, float(n)
    ceps = sum((g.ceps for g in groups if g.ceps is not None), np.zeros(N_CEPS))
    ceps_sq = sum((g.ceps_sq for g in groups if g.ceps_sq is not None), np.zeros(N_CEPS))
    var = np.maximum(ceps_sq / n - (ceps / n) ** 2, 1e-6)
    pitch = sum(g.pitch for g in groups)
    pitch_sq = sum(g.pitch_sq for g in groups)
    pitch_var = max(pitch_sq / voiced - (pitch / voiced) ** 2, 1e-6)
    return n * float(np.log(var).sum()) + voiced * float(np.log(pitch_var)), float(n)


def bic_gain(sums: Sequence[_Sums], labels: Sequence[int]) -> float:
    """How much better two voices explain the speech frames than one (Bayesian information
    criterion with diagonal Gaussians; positive: two voices). Frames 10 ms apart are far from
    independent, so the penalty counts one frame in ``BIC_FRAME_STRIDE``."""
    groups = [[s for s, v in zip(sums, labels, strict=True) if v == k] for k in (0, 1)]
    if not groups[0] or not groups[1]:
        return -np.inf
    whole, n = _log_variance([*groups[0], *groups[1]])
    parts = [_log_variance(g)[0] for g in groups]
    parameters = 2 * (N_CEPS + 1)
    penalty = BIC_PENALTY * 0.5 * parameters * np.log(max(2.0, n / BIC_FRAME_STRIDE))
    return float(0.5 * (whole - parts[0] - parts[1]) / BIC_FRAME_STRIDE - penalty)


def assign_voices(sums: Sequence[_Sums], spans: Sequence[tuple[float, float]]) -> list[int]:
    """Voice 0 or 1 per segment (all 0 when only one voice is heard); see the module docstring."""
    if not sums:
        return []
    vectors, weights = voice_vectors(sums)
    labels, _, share = two_voices(vectors, weights)
    known = np.flatnonzero(labels >= 0)
    if share < MIN_SHARE or bic_gain([sums[int(i)] for i in known], [int(labels[i]) for i in known]) <= 0:
        return [0] * len(sums)
    if not len(known):
        return [0] * len(sums)
    # Voice 0 is the one heard first.
    if labels[known[0]] == 1:
        labels[known] = 1 - labels[known]
    centres = np.array([(s + e) / 2 for s, e in spans])
    for i in np.flatnonzero(labels < 0):
        nearest = known[np.argmin(np.abs(centres[known] - centres[i]))]
        labels[i] = labels[nearest]
    return [int(v) for v in labels]


def diarize_file(path: str, segments: Sequence[TranscriptSegment]) -> list[int]:
    """The voice (0 or 1) of each of ``segments`` of the mono recording at ``path``: 0 for the
    voice heard first. Blocking CPU work (about 1% of recognition's): run it off the event loop."""
    spans = [(s.start, max(s.end, s.start + HOP / SAMPLE_RATE)) for s in segments]
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    accumulator = _Accumulator([spans[i] for i in order])
    with PcmStream(path, ("unknown",)) as stream:
        for (pcm,) in stream:
            accumulator.feed(pcm)
    voices_sorted = assign_voices(accumulator.sums, [spans[i] for i in order])
    voices = [0] * len(spans)
    for position, i in enumerate(order):
        voices[i] = voices_sorted[position]
    return voices
