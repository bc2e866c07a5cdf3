"""A real terminal for looking at what a command line tool draws: a tmux server of the test's
own (its own socket), one pane of a fixed size, its screen captured as text."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Terminal:
    socket: str
    shots: list[tuple[float, str]] = field(default_factory=list)

    def _tmux(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True, timeout=10)
        return out.stdout

    def run(self, command: list[str], env: Mapping[str, str], cwd: Path) -> None:
        """Type ``command`` at the pane's shell prompt and press Enter."""
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = f"cd {shlex.quote(str(cwd))} && env {exports} {shlex.join(command)}; echo EXIT=$?"
        self._tmux("send-keys", "-t", "main", line, "Enter")

    def press(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "main", *keys)

    def clear(self) -> None:
        self._tmux("send-keys", "-t", "main", "clear", "Enter")
        time.sleep(0.3)
        self._tmux("clear-history", "-t", "main")

    def screen(self) -> str:
        text = self._tmux("capture-pane", "-p", "-t", "main")
        self.shots.append((time.monotonic(), text))
        return text

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 60, every: float = 0.25) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed what was expected; last screen:\n{text}")
            time.sleep(every)


@contextlib.contextmanager
def terminal(name: str, width: int = 150, height: int = 40) -> Iterator[Terminal]:
    """A tmux session running a plain shell in a ``width`` x ``height`` pane."""
    socket = f"cp-test-{name}"
    term = Terminal(socket)
    subprocess.run(
        [
            "tmux",
            "-L",
            socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            str(width),
            "-y",
            str(height),
            "env",
            "-i",
            f"PATH={Path('/usr/bin')}:/bin",
            "TERM=xterm-256color",
            "LANG=C.UTF-8",
            "PS1=$ ",
            "bash",
            "--norc",
            "--noprofile",
        ],
        check=True,
        timeout=10,
    )
    try:
        yield term
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], check=False, capture_output=True, timeout=10)
