"""What the dashboard's browser tests need: Debian's Chromium under Playwright, a partner's host
page that embeds the dashboard (a real local HTTP server on another origin), a recording, and
the pipeline's events for calls ingested through the real API."""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import Browser, async_playwright

from tests.factories import call_item
from tests.support.infra import free_port

CHROMIUM = Path(os.environ.get("CALLPIPE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
ROOT = Path(__file__).resolve().parents[2]
#: Screenshots of every page, kept after the run to be looked at (.local is never committed).
ARTIFACTS = Path(os.environ.get("CALLPIPE_ARTIFACTS", ROOT / ".local" / "artifacts" / "dashboard"))


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium driven by Playwright (never a browser build of Playwright's own)."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


HOST_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Acme CRM</title><link rel="icon" href="data:,">
<style>body{font-family:sans-serif;margin:0;background:#eef}header{padding:10px 16px;background:#223;color:#fff}
iframe{border:0;width:100%;display:block;background:#fff}</style></head>
<body><header>Acme CRM &mdash; host page on its own origin</header>
<iframe id="dashboard" title="Call insights" height="700"></iframe>
<script>
  // The partner's side of the embedding contract: size the frame and follow its navigation.
  window.received = [];
  const frame = document.getElementById("dashboard");
  window.addEventListener("message", (event) => {
    window.received.push({ origin: event.origin, data: event.data });
    if (event.data && event.data.source === "callpipe-dashboard" && event.data.type === "resize") {
      frame.style.height = event.data.height + "px";
    }
  });
  frame.src = new URLSearchParams(location.search).get("src");
</script></body></html>"""


@contextlib.asynccontextmanager
async def host_site() -> AsyncIterator[str]:
    """A partner's application on ``http://localhost:<port>``: another site than the gateway's
    ``127.0.0.1``, so the dashboard runs in a third-party iframe as it does in production."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=HOST_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/embed", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://localhost:{port}"
    finally:
        await runner.cleanup()


def wav_recording(seconds: float = 24.0, rate: int = 8000) -> bytes:
    """A mono 16-bit PCM WAV any browser plays: a tone whose pitch steps every 4 seconds."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        pitch = 300 + 100 * int(i / rate / 4)
        frames += struct.pack("<h", int(6000 * math.sin(2 * math.pi * pitch * i / rate)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return out.getvalue()


def call_item_at(call_id: str, start: str, end: str, **overrides: Any) -> dict[str, Any]:
    """An ingestion item (the spec's shape) starting and ending at the given ISO times."""
    item = call_item(call_id, call__start_time=start, call__end_time=end)
    for key, value in overrides.items():
        outer, _, inner = key.partition("__")
        if inner:
            item[outer][inner] = value
        else:
            item[outer] = value
    return item
