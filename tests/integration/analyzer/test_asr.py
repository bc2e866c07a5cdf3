"""Speech recognition on real synthesised calls (festival), every engine's contract.

The default engine (PocketSphinx in its process pool) transcribes festival calls in three
formats, stereo and mono; word error rate, speaker attribution and timestamps are checked
against the scripts. The OpenAI-compatible engine is checked against a local server speaking
that API. Recognition results are computed once per module (both workers in parallel).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.analyzer.asr import AsrError, AsrRequest, AsrResult, AsrSettings, create_transcriber
from services.analyzer.asr.sphinx_engine import PocketSphinxTranscriber
from tests.support import audio, wer
from tests.support.openai_asr_server import ReceivedRequest, transcription_server

needs_festival = pytest.mark.skipif(not audio.tools_available(), reason="festival and its voices are not installed")

STEREO = ("agent", "customer")
MONO = ("unknown",)
WER_LIMIT = 0.20

# Every script is heard in two formats and both layouts; formats get different scripts so the
# run stays short (about 9 minutes of audio) while covering both voices and all six scripts.
MATRIX: dict[audio.Format, tuple[str, ...]] = {
    "wav": ("interested", "budget_and_timeline", "agenda_set"),
    "mp3": ("not_interested", "price_objection", "no_agenda"),
    "m4a": ("interested", "price_objection", "no_agenda"),
}


def _write(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def sphinx() -> Iterator[PocketSphinxTranscriber]:
    transcriber = create_transcriber(AsrSettings(workers=2))
    assert isinstance(transcriber, PocketSphinxTranscriber)
    yield transcriber
    asyncio.run(transcriber.close())


Key = tuple[str, bool, str]  # script, stereo, format


@pytest.fixture(scope="module")
def recognised(
    sphinx: PocketSphinxTranscriber, tmp_path_factory: pytest.TempPathFactory
) -> dict[Key, tuple[audio.RenderedCall, AsrResult]]:
    """Every call of ``MATRIX``, rendered, encoded and transcribed once."""
    if not audio.tools_available():
        pytest.skip("festival and its voices are not installed")
    tmp = tmp_path_factory.mktemp("calls")
    jobs: dict[Key, tuple[audio.RenderedCall, AsrRequest]] = {}
    for fmt, scripts in MATRIX.items():
        for script in scripts:
            for stereo in (True, False):
                call = audio.render_conversation(audio.SCRIPTS[script], stereo=stereo)
                path = _write(tmp, f"{script}-{'stereo' if stereo else 'mono'}.{fmt}", audio.encode(call, fmt))
                request = AsrRequest(path, STEREO if stereo else MONO, call.duration_s)
                jobs[(script, stereo, fmt)] = (call, request)

    async def run_all() -> list[AsrResult]:
        return await asyncio.gather(*(sphinx.transcribe(request) for _, request in jobs.values()))

    results = asyncio.run(run_all())
    return {key: (call, result) for (key, (call, _)), result in zip(jobs.items(), results, strict=True)}


def _text(result: AsrResult, speaker: str | None = None) -> str:
    return " ".join(s.text for s in result.segments if speaker is None or s.speaker == speaker)


def _reference(call: audio.RenderedCall, speaker: str | None = None) -> str:
    return " ".join(t.text for t in call.turns if speaker is None or t.speaker == speaker)


@needs_festival
def test_word_error_rate_of_default_engine(recognised: dict[Key, tuple[audio.RenderedCall, AsrResult]]) -> None:
    cells: dict[tuple[str, str], wer.WerCount] = {}
    for (_, stereo, fmt), (call, result) in recognised.items():
        key = (fmt, "stereo" if stereo else "mono")
        cells[key] = cells.get(key, wer.WerCount(0, 0)) + wer.count(call.transcript, _text(result))
    voices = {
        voice: wer.pooled(
            wer.count(_reference(call, speaker), _text(result, speaker))
            for (_, stereo, _), (call, result) in recognised.items()
            if stereo
        )
        for speaker, voice in audio.DEFAULT_VOICES.items()
    }
    report = [f"{fmt} {layout}: WER {c.wer:.1%} ({c.errors}/{c.words})" for (fmt, layout), c in sorted(cells.items())]
    report += [f"voice {voice}: WER {c.wer:.1%}" for voice, c in voices.items()]
    sys.stderr.write("\n" + "\n".join(report) + "\n")

    total = wer.pooled(cells.values())
    assert total.wer <= WER_LIMIT, report
    for fmt in MATRIX:
        per_format = wer.pooled(c for (f, _), c in cells.items() if f == fmt)
        assert per_format.wer <= WER_LIMIT, (fmt, report)
    for layout in ("stereo", "mono"):
        per_layout = wer.pooled(c for (_, lay), c in cells.items() if lay == layout)
        assert per_layout.wer <= WER_LIMIT, (layout, report)
    for voice, count in voices.items():
        assert count.wer <= WER_LIMIT, (voice, report)


def _turn_at(call: audio.RenderedCall, start: float, end: float) -> audio.TimedTurn:
    """The turn a segment overlaps most."""
    return max(call.turns, key=lambda t: min(end, t.end_s) - max(start, t.start_s))


@needs_festival
def test_stereo_channels_are_attributed_to_agent_and_customer(
    recognised: dict[Key, tuple[audio.RenderedCall, AsrResult]],
) -> None:
    right = wrong = 0
    for (_, stereo, _), (call, result) in recognised.items():
        if not stereo:
            continue
        assert {s.speaker for s in result.segments} == {"agent", "customer"}
        for segment in result.segments:
            words = len(segment.text.split())
            if _turn_at(call, segment.start, segment.end).speaker == segment.speaker:
                right += words
            else:
                wrong += words
    assert right / (right + wrong) >= 0.9, (right, wrong)


@needs_festival
def test_segment_timestamps_fall_within_their_turns(
    recognised: dict[Key, tuple[audio.RenderedCall, AsrResult]],
) -> None:
    tolerance = 0.5
    for (script, stereo, fmt), (call, result) in recognised.items():
        assert result.segments == sorted(result.segments, key=lambda s: s.start)
        assert abs(result.duration_s - call.duration_s) < 0.2, (script, fmt)
        for segment in result.segments:
            assert 0 <= segment.start <= segment.end <= result.duration_s + 0.01
            turn = _turn_at(call, segment.start, segment.end)
            assert turn.start_s - tolerance <= segment.start, (script, stereo, fmt, segment, turn)
            assert segment.end <= turn.end_s + tolerance, (script, stereo, fmt, segment, turn)
            if stereo:
                assert segment.speaker == turn.speaker
        # Speech seconds: about the turns' total (the VAD adds some lead-in and tail per region).
        spoken = sum(t.end_s - t.start_s for t in call.turns)
        assert 0.8 * spoken <= result.speech_s <= spoken + 0.8 * len(call.turns), (script, stereo, fmt)


@needs_festival
def test_mono_is_one_unknown_speaker(recognised: dict[Key, tuple[audio.RenderedCall, AsrResult]]) -> None:
    for (_, stereo, _), (_, result) in recognised.items():
        if not stereo:
            assert result.segments
            assert {s.speaker for s in result.segments} == {"unknown"}
            assert result.engine == "pocketsphinx"
            assert result.model.startswith("en-us@")
            assert result.version


@needs_festival
async def test_stereo_file_with_one_speaker_is_mixed_down(sphinx: PocketSphinxTranscriber, tmp_path: Path) -> None:
    call = audio.render_conversation(audio.SCRIPTS["interested"][:4], stereo=True)
    path = _write(tmp_path, "call.mp3", audio.encode(call, "mp3"))
    result = await sphinx.transcribe(AsrRequest(path, ("agent",), call.duration_s))
    assert {s.speaker for s in result.segments} == {"agent"}
    # Both parties are heard in the mix.
    assert wer.wer(call.transcript, _text(result)) <= 0.35


@pytest.mark.parametrize(
    ("stereo", "noise_dbfs"), [(True, None), (False, None), (False, -50.0), (True, -45.0)], ids=str
)
async def test_silence_and_low_noise_give_no_segments(
    sphinx: PocketSphinxTranscriber, tmp_path: Path, stereo: bool, noise_dbfs: float | None
) -> None:
    quiet = audio.render_silence(20.0, stereo=stereo, noise_dbfs=noise_dbfs)
    path = _write(tmp_path, "quiet.wav", audio.encode(quiet, "wav"))
    result = await sphinx.transcribe(AsrRequest(path, STEREO if stereo else MONO, quiet.duration_s))
    assert result.segments == []
    assert result.speech_s < 0.5
    assert abs(result.duration_s - 20.0) < 0.1


@pytest.mark.parametrize("content", [b"", b"definitely not audio " * 200, b"ID3" + bytes(5000)], ids=str)
async def test_undecodable_file_is_a_decode_error(
    sphinx: PocketSphinxTranscriber, tmp_path: Path, content: bytes
) -> None:
    path = _write(tmp_path, "broken.mp3", content)
    with pytest.raises(AsrError) as caught:
        await sphinx.transcribe(AsrRequest(path, MONO, 10.0))
    assert caught.value.code == "decode_error"
    assert not caught.value.retryable


async def test_file_without_audio_stream_is_a_decode_error(sphinx: PocketSphinxTranscriber, tmp_path: Path) -> None:
    path = _write(tmp_path, "video.mp4", audio.video_only("mp4", 1.0))
    with pytest.raises(AsrError) as caught:
        await sphinx.transcribe(AsrRequest(path, STEREO, 1.0))
    assert caught.value.code == "decode_error"


@needs_festival
async def test_timeout_is_enforced_and_the_pool_keeps_working(tmp_path: Path) -> None:
    call = audio.render_conversation(audio.SCRIPTS["price_objection"], stereo=True)
    path = _write(tmp_path, "call.m4a", audio.encode(call, "m4a"))
    # The budget is base + per_audio * the request's duration: a request claiming 0 s of audio
    # gets 50 ms, one claiming the real duration gets plenty.
    transcriber = create_transcriber(AsrSettings(workers=1, timeout_base_s=0.05, timeout_per_audio_s=2.0))
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AsrError) as caught:
            await transcriber.transcribe(AsrRequest(path, STEREO, 0.0))
        assert caught.value.code == "asr_timeout"
        assert loop.time() - started < 5.0  # the worker noticed its deadline; no backstop wait
        result = await transcriber.transcribe(AsrRequest(path, STEREO, call.duration_s))
        assert wer.wer(call.transcript, _text(result)) <= 0.3
    finally:
        await transcriber.close()


@needs_festival
async def test_event_loop_stays_responsive_during_recognition(sphinx: PocketSphinxTranscriber, tmp_path: Path) -> None:
    call = audio.render_conversation(audio.SCRIPTS["agenda_set"], stereo=False)
    path = _write(tmp_path, "call.mp3", audio.encode(call, "mp3"))
    ticks: list[float] = []
    loop = asyncio.get_running_loop()

    async def heartbeat() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.05)

    beat = asyncio.create_task(heartbeat())
    try:
        await sphinx.transcribe(AsrRequest(path, MONO, call.duration_s))
    finally:
        beat.cancel()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) > 10
    assert max(gaps) < 0.5


# -- OpenAI-compatible engine against a local server -------------------------------------------


@needs_festival
async def test_openai_engine_contract(tmp_path: Path) -> None:
    call = audio.render_conversation(audio.SCRIPTS["interested"], stereo=True)
    path = _write(tmp_path, "call.mp3", audio.encode(call, "mp3"))
    async with transcription_server() as server:
        transcriber = create_transcriber(
            AsrSettings(engine="openai", openai_base_url=server.base_url, openai_api_key="sk-test", workers=2)
        )
        try:
            result = await transcriber.transcribe(AsrRequest(path, STEREO, call.duration_s))
        finally:
            await transcriber.close()

    # One request per channel, each a mono file of the whole call, with the API's fields.
    assert len(server.requests) == 2
    for received in server.requests:
        assert received.path == "/v1/audio/transcriptions"
        assert received.headers["Authorization"] == "Bearer sk-test"
        assert received.fields == {
            "model": ["whisper-1"],
            "response_format": ["verbose_json"],
            "timestamp_granularities[]": ["segment"],
            "language": ["en"],
        }
        assert received.file_name is not None and received.file_name.endswith(".flac")
        assert received.file_type == "audio/flac"
        assert received.audio_channels() == 1
        assert abs(received.audio_duration_s() - call.duration_s) < 0.1

    # The canned segments (0-1 s and 1-2 s of each channel) come back labelled per channel.
    # Channel speech starts at 0.3 s (agent) and 5.9 s (customer): only the agent's first
    # canned seconds overlap speech, the customer's lie over silence and are dropped.
    assert result.engine == "openai" and result.model == "whisper-1"
    assert [(s.speaker, s.start, s.end) for s in result.segments] == [("agent", 0.0, 1.0), ("agent", 1.0, 2.0)]
    assert all(s.confidence == pytest.approx(0.779, abs=0.001) for s in result.segments)
    assert result.segments[0].text.startswith("request ")
    assert abs(result.duration_s - call.duration_s) < 0.1
    assert 0 < result.speech_s <= call.turns[0].end_s


@needs_festival
async def test_openai_engine_without_key_segments_or_speech(tmp_path: Path) -> None:
    call = audio.render_conversation(audio.SCRIPTS["not_interested"][:2], stereo=False)
    path = _write(tmp_path, "call.wav", audio.encode(call, "wav"))
    silent = _write(tmp_path, "silence.wav", audio.encode(audio.render_silence(5.0), "wav"))

    def text_only(request: ReceivedRequest, index: int) -> tuple[int, object]:
        return 200, {"text": "Hello, this is Mark. We are not interested."}

    async with transcription_server(text_only) as server:
        transcriber = create_transcriber(AsrSettings(engine="openai", openai_base_url=server.base_url + "/"))
        try:
            result = await transcriber.transcribe(AsrRequest(path, MONO, call.duration_s))
            quiet = await transcriber.transcribe(AsrRequest(silent, MONO, 5.0))
        finally:
            await transcriber.close()
    assert len(server.requests) == 1  # the silent file is never sent
    assert "Authorization" not in server.requests[0].headers
    [segment] = result.segments
    assert segment.speaker == "unknown" and segment.confidence is None
    assert segment.text == "Hello, this is Mark. We are not interested."
    # It spans the detected speech: from the first turn's start to the last turn's end.
    assert abs(segment.start - call.turns[0].start_s) < 0.5
    assert abs(segment.end - call.turns[-1].end_s) < 0.5
    assert quiet.segments == [] and quiet.speech_s == 0


@needs_festival
@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (500, {"error": "boom"}, "asr_failed"),
        (503, "overloaded", "asr_failed"),
        (429, {"error": {"message": "rate limited"}}, "asr_failed"),
        (401, {"error": {"message": "bad key"}}, "asr_unavailable"),
        (400, {"error": {"message": "model not found"}}, "asr_unavailable"),
        (200, "{not json", "asr_failed"),
        (200, ["a list"], "asr_failed"),
    ],
    ids=str,
)
async def test_openai_engine_error_mapping(tmp_path: Path, status: int, body: object, code: str) -> None:
    call = audio.render_conversation(audio.SCRIPTS["not_interested"][:1], stereo=False)
    path = _write(tmp_path, "call.wav", audio.encode(call, "wav"))
    async with transcription_server(lambda request, index: (status, body)) as server:
        transcriber = create_transcriber(AsrSettings(engine="openai", openai_base_url=server.base_url))
        try:
            with pytest.raises(AsrError) as caught:
                await transcriber.transcribe(AsrRequest(path, MONO, call.duration_s))
        finally:
            await transcriber.close()
    assert caught.value.code == code
    assert caught.value.retryable == (code == "asr_failed")


@needs_festival
async def test_openai_engine_unreachable_and_slow(tmp_path: Path) -> None:
    call = audio.render_conversation(audio.SCRIPTS["not_interested"][:1], stereo=False)
    path = _write(tmp_path, "call.wav", audio.encode(call, "wav"))
    async with transcription_server() as server:
        base_url = server.base_url
    # The server is gone: connection refused.
    transcriber = create_transcriber(AsrSettings(engine="openai", openai_base_url=base_url))
    try:
        with pytest.raises(AsrError) as caught:
            await transcriber.transcribe(AsrRequest(path, MONO, call.duration_s))
        assert caught.value.code == "asr_failed"
    finally:
        await transcriber.close()

    async with transcription_server() as server:
        server.delay_s = 30.0
        transcriber = create_transcriber(
            AsrSettings(engine="openai", openai_base_url=server.base_url, openai_timeout_s=0.5)
        )
        try:
            with pytest.raises(AsrError) as caught:
                await transcriber.transcribe(AsrRequest(path, MONO, call.duration_s))
            assert caught.value.code == "asr_timeout"
        finally:
            await transcriber.close()
