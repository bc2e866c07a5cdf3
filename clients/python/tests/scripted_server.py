"""A real HTTP server on loopback that answers scripted responses, for what the API cannot be
made to do on demand (a 503, a proxy's HTML page, a response that never comes)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Script:
    answers: list[Answer] = field(default_factory=list)
    default: Answer = field(default_factory=lambda: Answer(200, {"success": True, "data": {}}))
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> Answer:
        with self.lock:
            return self.answers.pop(0) if self.answers else self.default


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            with script.lock:
                script.requests.append((self.command, self.path, dict(self.headers), body))
            answer = script.next()
            if answer.delay_s:
                time.sleep(answer.delay_s)
            raw = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
            try:
                self.send_response_only(answer.status)
                if "date" not in {k.lower() for k in answer.headers}:
                    self.send_header("Date", self.date_time_string())
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(raw)))
                if "content-type" not in {k.lower() for k in answer.headers}:
                    self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def scripted_server(*answers: Answer) -> Iterator[tuple[str, Script]]:
    script = Script(list(answers))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()
