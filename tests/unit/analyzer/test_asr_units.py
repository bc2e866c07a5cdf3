"""The ASR package's parts without speech: settings, channel plans, errors, the worker pool,
streamed decoding's memory bound, segmentation, response parsing, word error rate."""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import itertools
import math
import os
import pickle
import time
import tracemalloc
import wave
from array import array
from pathlib import Path
from typing import Any

import pytest

from services.analyzer.asr import AsrError, AsrRequest, AsrSettings, create_transcriber
from services.analyzer.asr.audio import (
    BYTES_PER_SECOND,
    ChannelWindows,
    PcmStream,
    SpeechRegion,
    SpeechSegmenter,
    plan_speakers,
    speech_seconds,
)
from services.analyzer.asr.openai_engine import Piece, parse_response
from services.analyzer.asr.pool import WorkerPool
from services.analyzer.asr.sphinx_engine import PocketSphinxTranscriber
from tests.support import wer

# -- settings and the factory ------------------------------------------------------------------


def test_default_engine_is_pocketsphinx() -> None:
    transcriber = create_transcriber(AsrSettings())
    assert isinstance(transcriber, PocketSphinxTranscriber)
    assert transcriber.name == "pocketsphinx"
    # No process is started until there is work.
    assert transcriber.pool.worker_pids() == []
    asyncio.run(transcriber.close())


@pytest.mark.parametrize(
    "settings",
    [
        AsrSettings(workers=0),
        AsrSettings(timeout_base_s=0),
        AsrSettings(timeout_per_audio_s=-1),
        AsrSettings(engine="openai"),
        AsrSettings(engine="openai", openai_base_url="ftp://example.org/v1"),
        AsrSettings(engine="openai", openai_base_url="https://example.org/v1", openai_model=""),
        AsrSettings(engine="openai", openai_base_url="https://example.org/v1", openai_timeout_s=0),
        AsrSettings(engine="faster_whisper"),
        AsrSettings(engine="faster_whisper", whisper_model_dir="/nonexistent"),
        AsrSettings(engine="nonsense"),  # type: ignore[arg-type]
    ],
    ids=repr,
)
def test_misconfiguration_is_asr_unavailable(settings: AsrSettings) -> None:
    with pytest.raises(AsrError) as caught:
        create_transcriber(settings)
    assert caught.value.code == "asr_unavailable"
    assert not caught.value.retryable


def test_faster_whisper_not_installed_is_asr_unavailable(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(AsrError) as caught:
        create_transcriber(AsrSettings(engine="faster_whisper", whisper_model_dir=str(tmp_path)))
    if importlib.util.find_spec("faster_whisper") is None:
        assert caught.value.code == "asr_unavailable"
        assert "not installed" in caught.value.message


def test_faster_whisper_model_dir_and_options_are_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Pretend the extra is installed, to reach the checks behind the import check.
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        if name == "faster_whisper":
            return importlib.machinery.ModuleSpec("faster_whisper", None)
        return real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for settings, needle in [
        (AsrSettings(engine="faster_whisper"), "whisper_model_dir"),
        (AsrSettings(engine="faster_whisper", whisper_model_dir=str(tmp_path)), "model.bin"),
    ]:
        with pytest.raises(AsrError, match=needle):
            create_transcriber(settings)
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(AsrError, match="compute_type"):
        create_transcriber(
            AsrSettings(engine="faster_whisper", whisper_model_dir=str(tmp_path), whisper_compute_type="int3")
        )
    with pytest.raises(AsrError, match="beam_size"):
        create_transcriber(AsrSettings(engine="faster_whisper", whisper_model_dir=str(tmp_path), whisper_beam_size=0))
    transcriber = create_transcriber(AsrSettings(engine="faster_whisper", whisper_model_dir=str(tmp_path)))
    assert transcriber.name == "faster_whisper"
    asyncio.run(transcriber.close())


def test_timeout_grows_with_duration() -> None:
    settings = AsrSettings(timeout_base_s=60, timeout_per_audio_s=0.5)
    assert settings.timeout_for(0) == 60
    assert settings.timeout_for(600) == 360


def test_request_validation() -> None:
    with pytest.raises(ValueError, match="channel_speakers"):
        AsrRequest("x.wav", ())
    with pytest.raises(ValueError, match="duration_s"):
        AsrRequest("x.wav", ("unknown",), math.nan)


@pytest.mark.parametrize(
    ("channels", "requested", "planned"),
    [
        (2, ("agent", "customer"), ("agent", "customer")),
        (2, ("customer", "agent"), ("customer", "agent")),
        (1, ("unknown",), ("unknown",)),
        (1, ("agent", "customer"), ("unknown",)),
        (2, ("agent",), ("agent",)),
        (6, ("agent", "customer"), ("unknown",)),
        (6, ("unknown",), ("unknown",)),
        (0, ("agent", "customer"), ("unknown",)),
    ],
)
def test_channel_plan(channels: int, requested: tuple[Any, ...], planned: tuple[str, ...]) -> None:
    assert plan_speakers(channels, requested) == planned


def test_asr_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(AsrError("asr_failed", "worker died")))  # noqa: S301 - our own bytes
    assert isinstance(error, AsrError)
    assert (error.code, error.message, error.retryable) == ("asr_failed", "worker died", True)
    assert str(error) == "asr_failed: worker died"


# -- the worker pool ---------------------------------------------------------------------------


def _echo(value: int, *, deadline: float) -> int:
    return value


def _pid(*, deadline: float) -> int:
    return os.getpid()


def _crash(*, deadline: float) -> None:
    os._exit(3)


def _hang(seconds: float, *, deadline: float) -> None:
    time.sleep(seconds)  # ignores its deadline, like a call stuck in native code


def _cooperative(*, deadline: float) -> None:
    while time.monotonic() <= deadline:
        time.sleep(0.01)
    raise AsrError("asr_timeout", "noticed the deadline")


def _fails(*, deadline: float) -> None:
    raise KeyError("boom")


async def test_pool_recovers_from_a_worker_crash() -> None:
    pool = WorkerPool(workers=1)
    try:
        first = await pool.run(_pid, timeout_s=30)
        with pytest.raises(AsrError) as caught:
            await pool.run(_crash, timeout_s=30)
        assert caught.value.code == "asr_failed"
        assert caught.value.retryable
        assert pool.restarts == 1
        assert await pool.run(_echo, 7, timeout_s=30) == 7
        assert await pool.run(_pid, timeout_s=30) != first
    finally:
        await pool.close()


async def test_pool_kills_a_job_stuck_past_its_deadline() -> None:
    pool = WorkerPool(workers=1, grace_s=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(AsrError) as caught:
            await pool.run(_hang, 60.0, timeout_s=0.5)
        assert caught.value.code == "asr_timeout"
        assert time.monotonic() - started < 10
        assert pool.restarts == 1
        assert await pool.run(_echo, 1, timeout_s=30) == 1
    finally:
        await pool.close()


async def test_pool_cooperative_timeout_keeps_the_worker() -> None:
    pool = WorkerPool(workers=1, grace_s=30)
    try:
        pid = await pool.run(_pid, timeout_s=30)
        with pytest.raises(AsrError) as caught:
            await pool.run(_cooperative, timeout_s=0.3)
        assert caught.value.code == "asr_timeout"
        assert pool.restarts == 0
        assert await pool.run(_pid, timeout_s=30) == pid
    finally:
        await pool.close()


async def test_pool_maps_job_exceptions_and_refuses_work_when_closed() -> None:
    pool = WorkerPool(workers=1)
    with pytest.raises(AsrError) as caught:
        await pool.run(_fails, timeout_s=30)
    assert caught.value.code == "asr_failed"
    assert "KeyError" in caught.value.message
    pids = pool.worker_pids()
    assert pids
    await pool.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(AsrError) as caught:
        await pool.run(_echo, 1, timeout_s=30)
    assert caught.value.code == "asr_unavailable"


# -- streamed decoding -------------------------------------------------------------------------


def _write_tone_wav(path: Path, *, seconds: int, rate: int, channels: int) -> None:
    """A long two-tone WAV written one second at a time (never whole in memory)."""
    second = array(
        "h",
        (
            int(6000 * math.sin(2 * math.pi * (440 if ch == 0 else 660) * i / rate))
            for i in range(rate)
            for ch in range(channels)
        ),
    ).tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        for _ in range(seconds):
            w.writeframes(second)


def _peak_rss_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return False
    return True


def _peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def test_thirty_minutes_decode_in_bounded_memory(tmp_path: Path) -> None:
    # 30 min of 8 kHz stereo: resampled to 16 kHz and split, the whole call would be 115 MB of
    # PCM. The stream must hold about one chunk per channel.
    path = tmp_path / "long.wav"
    seconds = 30 * 60
    _write_tone_wav(path, seconds=seconds, rate=8000, channels=2)
    whole_pcm = seconds * BYTES_PER_SECOND * 2
    rss_tracked = _peak_rss_reset()
    rss_before = _peak_rss_bytes()
    tracemalloc.start()
    try:
        chunks = 0
        sizes: set[int] = set()
        with PcmStream(str(path), ("agent", "customer"), chunk_s=1.0) as stream:
            for left, right in stream:
                chunks += 1
                sizes.add(len(left))
                assert len(left) == len(right)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(stream.duration_s - seconds) < 0.1
    assert chunks == seconds
    assert sizes == {BYTES_PER_SECOND}
    # Python-side allocations: a few chunks, nowhere near the recording.
    assert peak < 2 * 1024 * 1024, peak
    if rss_tracked:
        # Native (FFmpeg) side too: the process's peak RSS grew by far less than the PCM.
        assert _peak_rss_bytes() - rss_before < whole_pcm / 10


def test_pcm_stream_mixes_down_and_reports_no_audio(tmp_path: Path) -> None:
    path = tmp_path / "short.wav"
    _write_tone_wav(path, seconds=3, rate=44100, channels=2)
    with PcmStream(str(path), ("agent",), chunk_s=0.5) as stream:
        chunks = list(stream)
    assert stream.speakers == ("agent",)
    assert all(len(c) == 1 for c in chunks)
    assert sum(len(c[0]) for c in chunks) == 3 * BYTES_PER_SECOND
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    with PcmStream(str(empty), ("unknown",)) as stream:
        assert list(stream) == []
    assert stream.duration_s == 0


def test_missing_file_is_not_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(AsrError) as caught:
        PcmStream(str(tmp_path / "gone.wav"), ("unknown",)).open()
    assert caught.value.code == "asr_failed"


# -- segmentation ------------------------------------------------------------------------------


def _noise(seconds: float, level: int = 8000, seed: int = 1) -> bytes:
    # A cheap deterministic noise (the VAD takes loud noise for speech, which is what we need).
    x, out = seed, array("h")
    for _ in range(int(seconds * 16000)):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        out.append((x % (2 * level)) - level)
    return out.tobytes()


def test_segmenter_caps_long_regions_and_keeps_time() -> None:
    segmenter = SpeechSegmenter(max_region_s=10.0)
    pcm = bytes(2 * BYTES_PER_SECOND) + _noise(25.0) + bytes(3 * BYTES_PER_SECOND)
    regions: list[SpeechRegion] = []
    for offset in range(0, len(pcm), 7777):  # chunk sizes that do not match VAD frames
        regions += segmenter.feed(pcm[offset : offset + 7777])
    regions += segmenter.finish()
    assert len(regions) == 3
    assert [round(r.end_s - r.start_s) for r in regions] == [10, 10, 5]
    assert 1.4 <= regions[0].start_s <= 2.0  # the noise starts at 2 s; up to one VAD window of lead-in
    for a, b in itertools.pairwise(regions):
        assert b.start_s == pytest.approx(a.end_s, abs=0.05)
    assert regions[-1].end_s == pytest.approx(27.0, abs=0.6)
    assert all(len(r.pcm) == pytest.approx((r.end_s - r.start_s) * BYTES_PER_SECOND, rel=0.01) for r in regions)


def test_channel_windows_cut_at_pauses() -> None:
    windows = ChannelWindows(target_s=4.0, max_s=8.0)
    # 3 s noise, 2 s pause, 6 s noise, 1 s pause, 10 s noise: cuts after the first pause once
    # past 4 s, then wherever the speech allows, at 8 s at the latest.
    pcm = _noise(3) + bytes(2 * BYTES_PER_SECOND) + _noise(6) + bytes(BYTES_PER_SECOND) + _noise(10)
    out = []
    for offset in range(0, len(pcm), BYTES_PER_SECOND):
        window = windows.feed(pcm[offset : offset + BYTES_PER_SECOND])
        if window is not None:
            out.append(window)
    last = windows.finish()
    if last is not None:
        out.append(last)
    assert sum(len(w.pcm) for w in out) == len(pcm)
    assert all(len(w.pcm) <= 8 * BYTES_PER_SECOND for w in out)
    assert 4.0 <= out[0].end_s <= 5.0  # in the first pause (3 s to 5 s), once past 4 s
    assert all(w.has_speech for w in out)
    assert speech_seconds(windows.regions, [(0.0, 1.0)]) == pytest.approx(3.0, abs=0.7)


# -- OpenAI answer parsing ---------------------------------------------------------------------


def test_parse_response_shifts_segments_by_the_piece_offset() -> None:
    piece = Piece(channel=1, speaker="customer", offset_s=480.0, duration_s=60.0, path="x.flac")
    body = {
        "text": "ignored",
        "segments": [
            {"start": 1.5, "end": 3.0, "text": " Hello there. ", "avg_logprob": -0.1},
            {"start": 4.0, "end": 4.5, "text": "  "},
            {"start": 5.0, "end": 4.0, "text": "backwards"},
        ],
    }
    segments = parse_response(body, piece, [])
    assert [(s.speaker, s.start, s.end, s.text) for s in segments] == [
        ("customer", 481.5, 483.0, "Hello there."),
        ("customer", 485.0, 485.0, "backwards"),
    ]
    assert segments[0].confidence == pytest.approx(math.exp(-0.1), abs=0.001)
    assert segments[1].confidence is None
    for bad in ({"segments": [{"start": "x"}]}, {"segments": ["text"]}, {"nothing": 1}, [1]):
        with pytest.raises(AsrError) as caught:
            parse_response(bad, piece, [])
        assert caught.value.code == "asr_failed"
    assert parse_response({"text": "   "}, piece, []) == []
    [whole] = parse_response({"text": "All of it."}, piece, [SpeechRegion(490.0, 500.0), SpeechRegion(510.0, 520.0)])
    assert (whole.start, whole.end, whole.text) == (490.0, 520.0, "All of it.")


# -- word error rate ---------------------------------------------------------------------------


def test_wer_normalisation() -> None:
    assert wer.normalize("We're NOT interested; it's $10,000 - 12% of 2,500!") == (
        [
            "we",
            "are",
            "not",
            "interested",
            "it",
            "is",
            "ten",
            "thousand",
            "dollars",
            "twelve",
            "percent",
            "of",
            "two",
            "thousand",
            "five",
            "hundred",
        ]
    )
    assert wer.normalize("OK, alright. Don't!") == ["okay", "all", "right", "do", "not"]
    assert wer.number_words(1_002_003) == "one million two thousand three"
    assert wer.number_words(90) == "ninety"


def test_wer_counts_edits_on_words() -> None:
    assert wer.wer("the cat sat", "the cat sat") == 0
    assert wer.wer("the cat sat", "the bat sat down") == pytest.approx(2 / 3)
    assert wer.wer("the cat sat", "") == 1
    assert wer.count("a b", "a") + wer.count("c d e", "c d e") == wer.WerCount(1, 5)
    assert wer.pooled([]).wer == 0
