"""Client settings from arguments, the environment, or a credentials file.

Precedence: arguments, then ``CALLPIPE_*`` environment variables, then the file named by
``CALLPIPE_ENV_FILE`` (or passed as ``env_file``), then defaults. The file holds ``KEY=VALUE``
lines; keys may be written with or without the ``CALLPIPE_`` prefix, so the development
credentials ``make up`` saves (``API_KEY=...``, ``TENANT_ID=...``) work as they are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from callpipe_client._retry import RetryPolicy
from callpipe_client.errors import ConfigurationError

ENV_PREFIX = "CALLPIPE_"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

# setting name -> the environment / file key (after the optional prefix)
_KEYS = {
    "base_url": "BASE_URL",
    "api_key": "API_KEY",
    "api_secret": "API_SECRET",
    "tenant_id": "TENANT_ID",
    "subtenant_id": "SUBTENANT_ID",
    "timeout_s": "TIMEOUT_S",
}


@dataclass(frozen=True)
class ClientConfig:
    """Where the API is, who you are, and how patient to be."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    api_secret: str | None = field(default=None, repr=False)
    tenant_id: str | None = None
    subtenant_id: str | None = None
    #: Seconds for a whole request (connect, send, wait, read).
    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"base URL must be an http(s) URL, got {self.base_url!r}")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ConfigurationError("timeouts must be positive")

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        env_file: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> ClientConfig:
        """Settings from ``overrides`` (None values ignored), the environment and the env file."""
        environ = os.environ if env is None else env
        path = env_file or environ.get(ENV_PREFIX + "ENV_FILE")
        from_file = read_env_file(Path(path)) if path else {}
        values: dict[str, Any] = {}
        for name, key in _KEYS.items():
            value = environ.get(ENV_PREFIX + key) or from_file.get(ENV_PREFIX + key) or from_file.get(key)
            if value:
                values[name] = value
        if "timeout_s" in values:
            try:
                values["timeout_s"] = float(values["timeout_s"])
            except ValueError:
                raise ConfigurationError(f"{ENV_PREFIX}TIMEOUT_S must be a number of seconds") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> ClientConfig:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def credential_headers(self) -> dict[str, str]:
        """``x-api-key`` and ``x-api-secret``; refuses to go on without them."""
        if not self.api_key or not self.api_secret:
            raise ConfigurationError(
                f"no API key and secret: set {ENV_PREFIX}API_KEY and {ENV_PREFIX}API_SECRET "
                f"(or {ENV_PREFIX}ENV_FILE), or pass api_key= and api_secret="
            )
        return {"x-api-key": self.api_key, "x-api-secret": self.api_secret}


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines; blank lines and ``#`` comments skipped, optional quotes removed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the credentials file {path}: {exc.strerror}") from None
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values
