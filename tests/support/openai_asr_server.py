"""An OpenAI-compatible speech-to-text server for tests: a real aiohttp server on loopback.

It speaks the shape of ``POST /v1/audio/transcriptions`` (multipart ``file``, ``model``,
``response_format``, ``timestamp_granularities[]``, ``language``; bearer auth) and records every
request it receives, so a test can assert what the client sent. Answers are canned: by default
a ``verbose_json`` body with one segment per second-long slice of the uploaded audio's first
``segments`` seconds, whose text names the request; ``respond`` replaces that with anything
(plain text only, an error status, malformed JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiohttp import BodyPartReader, web


@dataclass(frozen=True)
class ReceivedRequest:
    """One transcription request as the server saw it."""

    path: str
    headers: dict[str, str]
    fields: dict[str, list[str]]
    file_name: str | None
    file_type: str | None
    file: bytes

    def audio_duration_s(self) -> float:
        """Duration of the uploaded audio, decoded with PyAV."""
        samples, rate = 0, 1
        with av.open(io.BytesIO(self.file)) as container:
            for frame in container.decode(audio=0):
                samples += frame.samples
                rate = frame.sample_rate
        return samples / rate

    def audio_channels(self) -> int:
        """Channel count of the uploaded audio."""
        with av.open(io.BytesIO(self.file)) as container:
            return container.streams.audio[0].codec_context.channels


Responder = Callable[[ReceivedRequest, int], tuple[int, Any]]


def verbose_json(request: ReceivedRequest, index: int) -> tuple[int, Any]:
    """A ``verbose_json`` answer: the first two seconds as two segments naming the request."""
    duration = request.audio_duration_s()
    segments = [
        {
            "id": i,
            "start": float(i),
            "end": float(min(duration, i + 1)),
            "text": f" request {index} segment {i}.",
            "avg_logprob": -0.25,
            "no_speech_prob": 0.01,
        }
        for i in range(min(2, int(duration)))
    ]
    return 200, {
        "task": "transcribe",
        "language": "english",
        "duration": duration,
        "text": " ".join(s["text"] for s in segments),
        "segments": segments,
    }


@dataclass
class TranscriptionServer:
    """State of a running server: what it received and how it answers."""

    respond: Responder = verbose_json
    requests: list[ReceivedRequest] = field(default_factory=list)
    base_url: str = ""
    #: Seconds to wait before answering (a slow or stuck server); shutdown cuts it short.
    delay_s: float = 0.0
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        fields: dict[str, list[str]] = {}
        file_name = file_type = None
        file = b""
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                file_name, file_type = part.filename, part.headers.get("Content-Type")
                file = bytes(await part.read())
            else:
                fields.setdefault(part.name, []).append(await part.text())
        received = ReceivedRequest(request.path, dict(request.headers), fields, file_name, file_type, file)
        self.requests.append(received)
        if self.delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), self.delay_s)
        status, body = self.respond(received, len(self.requests))
        if isinstance(body, str | bytes):
            return web.Response(status=status, body=body, content_type="application/json")
        return web.json_response(body, status=status)


@contextlib.asynccontextmanager
async def transcription_server(respond: Responder = verbose_json) -> AsyncIterator[TranscriptionServer]:
    """A server on 127.0.0.1 (a free port); ``base_url`` ends in ``/v1``."""
    state = TranscriptionServer(respond)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/audio/transcriptions", state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield state
    finally:
        state.closing.set()
        await runner.cleanup()
