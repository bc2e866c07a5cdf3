"""Fetching one call's recording: every accepted format, every way a recording host or a
recording can be wrong, and the SSRF guard with a canary listener."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from schemas.events import AnyEvent, CallFailed, CallFetched, CallStageStarted
from services.fetcher.handlers import DownloadLimits, handle_ingested
from tests.factories import ingested_event
from tests.integration.fetcher.conftest import LIMITS
from tests.support import audio
from tests.support.recordings import RecordingHost


def ingested(url: str, call_id: str | None = None):  # type: ignore[no-untyped-def]
    return ingested_event(call_id, call__recording_url=url)


async def fetch(deps, url: str, call_id: str | None = None):  # type: ignore[no-untyped-def]
    [result] = await handle_ingested(ingested(url, call_id), deps)
    return result


def failure(result) -> tuple[str, bool]:  # type: ignore[no-untyped-def]
    assert isinstance(result, CallFailed), result
    assert result.payload.stage == "fetch"
    return result.payload.code, result.payload.retryable


# -- accepted formats ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "codec", "tolerance"),
    [
        ("mp3", "mp3", 0.05),
        ("wav", "pcm_s16le", 0.01),
        ("aac", "aac", 0.15),
        ("m4a", "aac", 0.08),
        ("mp4", "aac", 0.08),
    ],
)
@pytest.mark.parametrize("stereo", [True, False])
async def test_each_format_is_accepted_with_its_real_duration(
    fetch_env, host: RecordingHost, fmt: str, codec: str, tolerance: float, stereo: bool
) -> None:
    deps, blobs, _ = fetch_env
    call = audio.render_conversation(audio.SCRIPTS["interested"][:2], stereo=stereo)
    data = audio.encode(call, fmt)  # type: ignore[arg-type]
    # The content type is deliberately unhelpful: the format is decided by content.
    url = host.add(f"call.{fmt}", data, "application/octet-stream")
    result = await fetch(deps(), url)
    assert isinstance(result, CallFetched), result
    p = result.payload
    assert (p.container, p.codec, p.channels, p.sample_rate) == (fmt, codec, 2 if stereo else 1, audio.SAMPLE_RATE)
    assert abs(p.duration_s - call.duration_s) <= tolerance, (p.duration_s, call.duration_s)
    assert p.sha256 == hashlib.sha256(data).hexdigest() and p.bytes == len(data)
    assert await blobs.exists(p.sha256)
    async with blobs.open_local(p.blob_uri) as local:
        assert local.read_bytes() == data
    assert p.ingested.call.id == result.call_id


async def test_a_redelivered_event_does_not_download_again(fetch_env, host: RecordingHost, speech) -> None:
    deps, _, _ = fetch_env
    url = host.add("once.mp3", audio.encode(speech, "mp3"))
    event = ingested(url)
    [first] = await handle_ingested(event, d := deps())
    [again] = await handle_ingested(event, d)
    assert isinstance(first, CallFetched) and isinstance(again, CallFetched)
    assert host.hits["once.mp3"] == 1
    assert again.event_id == first.event_id and again.payload == first.payload


async def test_starting_a_download_is_announced_once(fetch_env, host: RecordingHost, speech) -> None:
    deps, _, _ = fetch_env
    announced: list[AnyEvent] = []

    async def announce(event: AnyEvent) -> None:
        announced.append(event)

    d = dataclasses.replace(deps(), announce=announce)
    event = ingested(host.add("announced.mp3", audio.encode(speech, "mp3")))
    [result] = await handle_ingested(event, d)
    assert isinstance(result, CallFetched)
    [progress] = announced
    assert isinstance(progress, CallStageStarted) and progress.payload.stage == "fetch"
    assert (progress.call_id, progress.key(), progress.tenant_id) == (event.call_id, event.key(), event.tenant_id)
    await handle_ingested(event, d)  # redelivered: answered from the table, no download starts
    assert len(announced) == 1


async def test_a_failing_announce_never_fails_the_call(
    fetch_env, host: RecordingHost, speech, caplog: pytest.LogCaptureFixture
) -> None:
    deps, _, _ = fetch_env

    async def broken(event: AnyEvent) -> None:
        raise RuntimeError("Kafka is down")

    url = host.add("unannounced.mp3", audio.encode(speech, "mp3"))
    with caplog.at_level(logging.WARNING):
        [result] = await handle_ingested(ingested(url), dataclasses.replace(deps(), announce=broken))
    assert isinstance(result, CallFetched)
    assert "progress event not published" in caplog.text


async def test_the_same_recording_for_two_calls_is_stored_once(fetch_env, host: RecordingHost, speech) -> None:
    deps, _, _ = fetch_env
    data = audio.encode(speech, "wav")
    a = await fetch(deps(), host.add("a.wav", data))
    b = await fetch(deps(), host.add("b.wav", data))
    assert a.payload.blob_uri == b.payload.blob_uri


# -- the recording host misbehaves -----------------------------------------------------------


async def test_404_fails_at_once(fetch_env, host: RecordingHost) -> None:
    deps, _, _ = fetch_env
    assert failure(await fetch(deps(), host.url("missing.mp3"))) == ("http_status", False)
    assert host.hits["missing.mp3"] == 1


async def test_500_then_200_is_retried_and_succeeds(fetch_env, host: RecordingHost, speech) -> None:
    deps, _, _ = fetch_env
    url = host.add("flaky.mp3", audio.encode(speech, "mp3"))
    host.fail_first["flaky.mp3"] = [500]
    assert isinstance(await fetch(deps(), url), CallFetched)
    assert host.hits["flaky.mp3"] == 2


async def test_429_retry_after_is_honoured(fetch_env, host: RecordingHost, speech) -> None:
    deps, _, _ = fetch_env
    url = host.add("busy.mp3", audio.encode(speech, "mp3"))
    host.fail_first["busy.mp3"] = [429]  # with Retry-After: 1
    started = time.monotonic()
    assert isinstance(await fetch(deps(), url), CallFetched)
    assert time.monotonic() - started >= 1.0
    assert host.hits["busy.mp3"] == 2


async def test_persistent_5xx_gives_a_retryable_failure(fetch_env, host: RecordingHost) -> None:
    deps, _, _ = fetch_env
    host.fail_first["down.mp3"] = [503, 502, 500, 500]
    assert failure(await fetch(deps(), host.url("down.mp3"))) == ("http_status", True)
    assert host.hits["down.mp3"] == LIMITS.attempts


async def test_a_host_that_stops_answering_times_out(fetch_env, host: RecordingHost) -> None:
    deps, _, _ = fetch_env
    host.stall_s = 1.5
    started = time.monotonic()
    assert failure(await fetch(deps(read_timeout_s=0.3), host.url("stall"))) == ("timeout", True)
    assert time.monotonic() - started < 4
    assert host.hits["stall"] == LIMITS.attempts


async def test_a_body_over_the_cap_is_aborted_and_nothing_is_stored(fetch_env, host: RecordingHost) -> None:
    deps, blobs, spool = fetch_env
    small = DownloadLimits(**{**LIMITS.__dict__, "max_bytes": 1024 * 1024})
    assert failure(await fetch(deps(limits=small), host.url("endless-stream"))) == ("too_large", False)
    assert list(spool.glob("*")) == []
    assert list(blobs.root.glob("sha256/**/*")) == []


async def test_a_declared_length_over_the_cap_is_refused_before_downloading(fetch_env, host: RecordingHost) -> None:
    deps, _, spool = fetch_env
    small = DownloadLimits(**{**LIMITS.__dict__, "max_bytes": 1000})
    url = host.add("big.wav", b"RIFF" + b"\0" * 5000)
    assert failure(await fetch(deps(limits=small), url)) == ("too_large", False)
    assert not spool.exists() or not any(spool.glob("*"))


# -- the recording is not what it claims -----------------------------------------------------


async def test_an_html_page_served_as_audio_mpeg_is_refused(fetch_env, host: RecordingHost) -> None:
    deps, _, _ = fetch_env
    url = host.add("page.mp3", b"<!doctype html><html><body>Session expired</body></html>", "audio/mpeg")
    assert failure(await fetch(deps(), url)) == ("unsupported_format", False)


async def test_a_truncated_mp3_is_refused(fetch_env, host: RecordingHost, speech) -> None:
    deps, _, _ = fetch_env
    url = host.add("cut.mp3", audio.truncated(audio.encode(speech, "mp3"), 0.5), "audio/mpeg")
    result = await fetch(deps(), url)
    assert failure(result) == ("corrupt", False)
    assert "truncated" in result.payload.message


@pytest.mark.parametrize("fmt", ["wav", "aac", "m4a", "mp4"])
async def test_other_truncated_formats_are_refused(fetch_env, host: RecordingHost, speech, fmt: str) -> None:
    deps, _, _ = fetch_env
    url = host.add(f"cut.{fmt}", audio.truncated(audio.encode(speech, fmt), 0.5))  # type: ignore[arg-type]
    assert failure(await fetch(deps(), url)) == ("corrupt", False)


async def test_a_zero_byte_body_is_refused(fetch_env, host: RecordingHost) -> None:
    deps, _, _ = fetch_env
    assert failure(await fetch(deps(), host.add("empty.mp3", b"", "audio/mpeg"))) == ("empty_body", False)


async def test_a_video_without_audio_is_refused(fetch_env, host: RecordingHost) -> None:
    deps, _, _ = fetch_env
    if not audio.tools_available():
        pytest.skip("festival is not installed")
    url = host.add("video.mp4", audio.video_only("mp4"), "video/mp4")
    assert failure(await fetch(deps(), url)) == ("no_audio_stream", False)


# -- SSRF --------------------------------------------------------------------------------------


class Canary:
    """A listener that counts TCP connections, on an address the guard must never reach."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    c = Canary()
    server = await asyncio.start_server(c._accept, "127.0.0.1", 0)
    c.port = server.sockets[0].getsockname()[1]
    async with server:
        yield c


async def test_a_redirect_to_loopback_is_blocked(fetch_env, canary: Canary) -> None:
    deps, _, _ = fetch_env

    # The partner's host (127.0.0.2) is allowed; the redirect target 127.0.0.1 is not.
    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{canary.port}/internal")

    app = web.Application()
    app.router.add_get("/r", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        result = await fetch(deps(allow="127.0.0.2/32"), f"http://127.0.0.2:{port}/r")
    finally:
        await runner.cleanup()
    assert failure(result) == ("blocked_address", False)
    await asyncio.sleep(0.1)
    assert canary.connections == 0


@pytest.mark.parametrize("host_form", ["localhost", "127.0.0.1", "2130706433", "0x7f000001", "127.1"])
async def test_loopback_by_name_or_any_spelling_is_blocked(fetch_env, canary: Canary, host_form: str) -> None:
    deps, _, _ = fetch_env
    result = await fetch(deps(allow=""), f"http://{host_form}:{canary.port}/recording.mp3")
    assert failure(result)[0] in ("blocked_address", "invalid_url")
    assert not failure(result)[1]
    await asyncio.sleep(0.1)
    assert canary.connections == 0


async def test_failure_messages_do_not_leak_internals(fetch_env, canary: Canary) -> None:
    deps, _, _ = fetch_env
    result = await fetch(deps(allow=""), f"http://localhost:{canary.port}/x")
    assert "127.0.0.1" not in result.payload.message
