"""The whole pipeline as real processes (gateway, fetcher, analyzer, notifier), the way `make up`
runs it, on one database, one broker and one blob store, with each service stoppable, killable
and restartable on its own (for end-to-end and fault tests)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.stack import wait_healthy
from services.gateway.config import GatewaySettings
from tests.support.gateway import gateway_env
from tests.support.infra import free_port
from tests.support.processes import ROOT, stop

WORKERS = ("fetcher", "analyzer", "notifier")


@dataclass
class Pipeline:
    """Service processes sharing ``env``; ``gateway_url`` is the public API's base URL.

    ``env`` holds what every service reads (database, broker, topic prefix, blob store);
    ``service_env`` what one service reads on top (ports, SSRF allowlists, CA bundle, ...).
    """

    env: dict[str, str]
    service_env: dict[str, dict[str, str]]
    logs: Path
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def start(self, name: str, timeout: float = 60.0) -> subprocess.Popen[bytes]:
        """Start ``name`` (again) and wait until its ``/healthz`` answers."""
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                cwd=ROOT,
                env={**os.environ, **self.env, **self.service_env.get(name, {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        wait_healthy(f"http://127.0.0.1:{self.ports[name]}/healthz", proc, timeout, f"{name} (see {self.logs})")
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL ``name`` and its children (its recognition or probe workers): no clean-up at all."""
        stop(self.procs[name], signal.SIGKILL)

    def stop(self, name: str) -> None:
        """SIGTERM ``name``: a graceful shutdown."""
        stop(self.procs[name])

    def restart(self, name: str, *, hard: bool = False) -> None:
        (self.kill if hard else self.stop)(name)
        self.start(name)

    def ready_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/readyz"

    def close(self) -> None:
        for name in reversed(list(self.procs)):
            stop(self.procs[name])


@contextlib.contextmanager
def pipeline(
    settings: GatewaySettings,
    logs: Path,
    *,
    blob_root: Path,
    ca_bundle: Path | None = None,
    extra: Mapping[str, Mapping[str, str]] | None = None,
    services: tuple[str, ...] = ("gateway", *WORKERS),
) -> Iterator[Pipeline]:
    """Every service of ``services`` started, on ``settings``' database, broker and topic prefix.

    Recording hosts and callback receivers on loopback are let through the SSRF guards (the
    development allowlist), and the notifier trusts ``ca_bundle`` (the test CA). ``extra`` adds
    per-service environment variables.
    """
    logs.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in services}
    shared = {
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(settings.kafka_topic_partitions),
        "BLOB_ROOT": str(blob_root),
        "LOG_LEVEL": "INFO",
    }
    service_env: dict[str, dict[str, str]] = {
        "gateway": gateway_env(settings, ports.get("gateway", 0)),
        "fetcher": {"FETCHER_PORT": str(ports.get("fetcher", 0)), "FETCHER_SSRF_ALLOW_NETWORKS": "127.0.0.1/32"},
        "analyzer": {"ANALYZER_PORT": str(ports.get("analyzer", 0))},
        "notifier": {
            "NOTIFIER_PORT": str(ports.get("notifier", 0)),
            "NOTIFIER_SSRF_ALLOW_NETWORKS": "127.0.0.1/32",
            **({"NOTIFIER_CA_BUNDLE": str(ca_bundle)} if ca_bundle else {}),
        },
    }
    for name, values in (extra or {}).items():
        service_env.setdefault(name, {}).update(values)
    running = Pipeline(env=shared, service_env=service_env, logs=logs, ports=ports)
    try:
        for name in services:
            running.start(name)
        yield running
    finally:
        running.close()


def signing_secret(database_url: str, partner_id: str) -> str:
    """The partner's current callback signing secret, as an operator reads it (the notifier's
    admin CLI, which creates the first one if there is none)."""
    out = subprocess.run(
        [sys.executable, "-m", "services.notifier.admin", "signing-secret", "show", "--partner", partner_id],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=True,
    )
    secret: str = json.loads(out.stdout)["secret"]
    return secret
