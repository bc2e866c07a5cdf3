"""What every command shares: output channels, settings, exit codes, error reporting."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from callpipe_client import errors
from callpipe_client.client import AsyncClient, RetryHook
from callpipe_client.config import ClientConfig
from callpipe_client.inputs import InputError
from callpipe_client.journal import JournalError

EXIT_OK = 0
EXIT_INCOMPLETE = 1  # done, but some calls were rejected or failed, or a webhook did not verify
EXIT_USAGE = 2  # bad arguments, unusable input or journal
EXIT_AUTH = 3  # credentials or tenancy missing or refused
EXIT_REFUSED = 4  # the API refused the request (404, 409, 422, ...)
EXIT_UNAVAILABLE = 5  # unreachable, failing, or rate limited beyond patience, after every retry
EXIT_TIMEOUT = 6  # watch: calls still in progress at --timeout
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM


class Cli:
    """Output channels and settings of one invocation. Results go to stdout (JSON documents with
    ``--json``), everything meant for a person watching (progress, notes) to stderr."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = args.json
        self.out = Console(highlight=False)
        if not self.out.is_terminal:
            # Piped or redirected: lay tables out in full rather than in 80 columns.
            self.out = Console(highlight=False, width=200)
        self.err = Console(stderr=True, highlight=False)
        self.progress_enabled = not args.quiet and not args.no_progress and self.err.is_terminal

    def config(self) -> ClientConfig:
        a = self.args
        return ClientConfig.from_env(
            env_file=a.env_file,
            base_url=a.base_url,
            tenant_id=a.tenant,
            subtenant_id=a.subtenant,
            timeout_s=a.timeout,
        )

    def client(self, on_retry: RetryHook | None = None) -> AsyncClient:
        return AsyncClient(self.config(), on_retry=on_retry)

    def emit(self, value: Any) -> None:
        """One JSON document, on a line of its own, on stdout."""
        sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    def note(self, message: str, style: str = "") -> None:
        if not self.args.quiet:
            self.err.print(message, style=style, markup=False, highlight=False, soft_wrap=True)


def read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, InputError | JournalError | ValueError):
        return EXIT_USAGE
    if isinstance(exc, errors.ConfigurationError | errors.Forbidden | errors.BadRequest):
        return EXIT_AUTH
    if isinstance(exc, errors.RateLimited | errors.ServerError | errors.TransportError):
        return EXIT_UNAVAILABLE
    if isinstance(exc, errors.ApiError):
        return EXIT_REFUSED
    if isinstance(exc, errors.WebhookVerificationError):
        return EXIT_INCOMPLETE
    return EXIT_UNAVAILABLE


def message(exc: BaseException) -> str:
    if isinstance(exc, errors.ApiError):
        text = f"{exc.message} (HTTP {exc.status_code})"
        if exc.errors:
            text += "".join(f"\n  {e.field}: {e.message}" for e in exc.errors)
        return text
    return str(exc)


def error_json(exc: BaseException) -> dict[str, Any]:
    body: dict[str, Any] = {"code": getattr(exc, "code", "error"), "message": str(exc)}
    if isinstance(exc, errors.ApiError):
        body.update(message=exc.message, status=exc.status_code, errors=[e.model_dump() for e in exc.errors])
    return body
