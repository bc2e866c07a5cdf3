"""An OpenAI-compatible chat-completions endpoint for tests: a real aiohttp server on loopback.

It answers ``POST /v1/chat/completions`` in the API's shape, from a queue of scripted replies
(an assistant message with any content - valid analysis JSON, malformed JSON, JSON that breaks
the schema -, or an HTTP error status, optionally after a delay), and records every request it
received (headers and JSON body), so tests can check what the client sent.

Typical use::

    async with openai_chat_server() as llm:
        llm.reply_json({...})
        llm.reply_status(500)
        engine = LLMAnalysisEngine(AnalysisSettings(engine="llm", llm_base_url=llm.base_url, llm_model="m"))
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: an assistant message (``content``) or an error ``status``."""

    content: str | None = None
    status: int = 200
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    delay_s: float = 0.0


@dataclass(frozen=True)
class ReceivedRequest:
    headers: Mapping[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))


@dataclass
class ChatServer:
    """The server's script and what it saw."""

    base_url: str = ""
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[ReceivedRequest] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def reply_content(self, content: str, *, finish_reason: str = "stop", delay_s: float = 0.0) -> None:
        """Answer the next request with an assistant message holding ``content`` verbatim."""
        self.replies.append(Reply(content=content, finish_reason=finish_reason, delay_s=delay_s))

    def reply_json(self, answer: Any, *, delay_s: float = 0.0) -> None:
        """Answer the next request with ``answer`` serialised as the message content."""
        self.reply_content(json.dumps(answer), delay_s=delay_s)

    def reply_status(self, status: int, body: str = "", headers: Mapping[str, str] | None = None) -> None:
        """Answer the next request with an HTTP error (an OpenAI-style error body by default)."""
        text = body or json.dumps({"error": {"message": f"scripted {status}", "type": "test", "code": status}})
        self.replies.append(Reply(status=status, body=text, headers=dict(headers or {})))

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        self.requests.append(ReceivedRequest(dict(request.headers), body))
        if not self.replies:
            return web.json_response({"error": {"message": "no scripted reply left"}}, status=500)
        reply = self.replies.popleft()
        if reply.delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), reply.delay_s)
        if reply.status != 200:
            return web.Response(
                status=reply.status, text=reply.body, content_type="application/json", headers=reply.headers
            )
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "test-model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content},
                        "finish_reason": reply.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": len(raw) // 4,
                    "completion_tokens": len(reply.content or "") // 4,
                    "total_tokens": (len(raw) + len(reply.content or "")) // 4,
                },
            }
        )


@contextlib.asynccontextmanager
async def openai_chat_server(host: str = "127.0.0.1") -> AsyncIterator[ChatServer]:
    """A running server; ``base_url`` is its API root (``http://127.0.0.1:PORT/v1``)."""
    state = ChatServer()
    app = web.Application()
    app.router.add_post(CHAT_PATH, state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://{host}:{port}/v1"
    try:
        yield state
    finally:
        state.closing.set()
        await runner.cleanup()
