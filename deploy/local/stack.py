"""Local stack: Apache Kafka (KRaft, official Maven Central jars) and PostgreSQL on loopback.

Standard library only, so the Makefile can run it before the virtualenv exists. Test fixtures
import it too (``deploy.local.stack``) to start the shared stack or a dedicated broker they can
stop and restart.

Usage: python3 deploy/local/stack.py {install|up|down|kafka-up|kafka-down|pg-up|pg-down|env|status}
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("CALLPIPE_STATE_DIR", ROOT / ".local"))
KAFKA_LIBS = STATE / "kafka" / "libs"
POM = ROOT / "deploy" / "local" / "pom.xml"
LOG4J = ROOT / "deploy" / "local" / "log4j2.properties"
RUN = STATE / "run"

KAFKA_PORT = int(os.environ.get("CALLPIPE_KAFKA_PORT", "9092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("CALLPIPE_KAFKA_CONTROLLER_PORT", "9093"))
PG_PORT = int(os.environ.get("CALLPIPE_PG_PORT", "5432"))
# Development-only credentials for the loopback database; services refuse them in production.
PG_USER = "callpipe"
PG_PASSWORD = "callpipe"  # noqa: S105
PG_DATABASE = "callpipe"


def log(msg: str) -> None:
    print(f"[stack] {msg}", file=sys.stderr, flush=True)


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; reaps it first if it is our own exited child (a zombie)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _privileged(cmd: list[str]) -> list[str]:
    """Prefix a command with sudo unless we are root already."""
    if os.geteuid() == 0:
        return cmd
    if shutil.which("sudo") is None:
        raise SystemExit(f"need root or sudo to run: {' '.join(cmd)}")
    return ["sudo", *cmd]


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["sudo", "-u", "postgres", *cmd]


# --------------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------------


def ensure_kafka_jars() -> None:
    """Resolve the pinned Kafka artifacts with Maven once; later calls are no-ops."""
    marker = KAFKA_LIBS / ".resolved"
    if marker.exists() and marker.stat().st_mtime >= POM.stat().st_mtime:
        return
    if shutil.which("mvn") is None:
        raise SystemExit("Maven (mvn) is required to fetch the Kafka jars")
    log("resolving Kafka jars from Maven Central")
    if KAFKA_LIBS.exists():
        shutil.rmtree(KAFKA_LIBS)
    KAFKA_LIBS.mkdir(parents=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={KAFKA_LIBS}",
        ],
        check=True,
    )
    marker.touch()


@dataclass
class KafkaNode:
    """One single-node KRaft broker+controller with its own data directory and ports."""

    home: Path
    port: int
    controller_port: int
    heap: str = "1g"
    # Server properties that replace or add to the defaults (tests: a SASL/TLS listener).
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def _pidfile(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def logfile(self) -> Path:
        return self.home / "kafka.log"

    @property
    def _config(self) -> Path:
        return self.home / "server.properties"

    @property
    def _data(self) -> Path:
        return self.home / "data"

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cfg = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._data),
            "num.partitions": "6",
            # Topics are created explicitly by the services with their partition counts.
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "168",
            # callpipe's record limit (services.common.kafka.MAX_MESSAGE_BYTES): the services also
            # create their topics with it, so a broker with a smaller default works the same.
            "message.max.bytes": str(4 * 1024 * 1024),
            "replica.fetch.max.bytes": str(4 * 1024 * 1024),
            **self.overrides,
        }
        self._config.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))

    def pid(self) -> int | None:
        try:
            pid = int(self._pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}",
            "-cp",
            f"{KAFKA_LIBS}/*",
            main,
            *args,
        ]

    def _format(self) -> None:
        if (self._data / "meta.properties").exists():
            return
        cluster_id = (
            subprocess.run(
                self._java("kafka.tools.StorageTool", "random-uuid"),
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self._config), "--ignore-formatted"
            ),
            check=True,
            capture_output=True,
            text=True,
        )

    def start(self, timeout: float = 90.0) -> None:
        """Start the broker (formatting its storage the first time) and wait until it serves."""
        if self.pid() is not None and _port_open(self.port):
            return
        if _port_open(self.port):
            # Like a running PostgreSQL, a broker already serving this port is reused.
            log(f"reusing the broker already listening on {self.bootstrap}")
            return
        ensure_kafka_jars()
        self._write_config()
        self._format()
        offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        with open(self.logfile, "ab") as out:
            proc = subprocess.Popen(
                self._java("kafka.Kafka", str(self._config)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._pidfile.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"Kafka exited with {proc.returncode}; see {self.logfile}")
            with open(self.logfile, "rb") as f:
                f.seek(offset)
                started = b"Kafka Server started" in f.read()
            if started and _port_open(self.port):
                return
            time.sleep(0.2)
        raise SystemExit(f"Kafka did not start within {timeout}s; see {self.logfile}")

    def stop(self, timeout: float = 60.0, sig: int = signal.SIGTERM) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None and not _port_open(self.port):
                break
            time.sleep(0.2)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            time.sleep(0.5)
            _alive(pid)
        self._pidfile.unlink(missing_ok=True)


def default_kafka() -> KafkaNode:
    return KafkaNode(STATE / "kafka", KAFKA_PORT, KAFKA_CONTROLLER_PORT)


# --------------------------------------------------------------------------------------------
# PostgreSQL (Debian packages; a server already running is reused)
# --------------------------------------------------------------------------------------------


def _pg_ready() -> bool:
    if shutil.which("pg_isready"):
        r = subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(PG_PORT)], check=False)
        return r.returncode == 0
    return _port_open(PG_PORT)


def ensure_postgres_installed() -> None:
    if shutil.which("pg_ctlcluster") and Path("/usr/lib/postgresql").exists():
        return
    log("installing PostgreSQL from the Debian packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(_privileged(["apt-get", "update", "-q"]), check=True, env=env)
    subprocess.run(_privileged(["apt-get", "install", "-y", "-q", "postgresql"]), check=True, env=env)


def ensure_debian_packages(wanted: list[str], why: str) -> None:
    """Install the Debian packages of ``wanted`` that are missing (without recommends); on another
    system, say what to install."""
    if shutil.which("dpkg-query") is None:
        log(f"not a Debian system: install {', '.join(wanted)} yourself ({why}); the tests that need them skip")
        return
    missing = []
    for pkg in wanted:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], check=False, capture_output=True, text=True)
        if r.returncode != 0 or not r.stdout.endswith(" installed"):
            missing.append(pkg)
    if not missing:
        return
    log(f"installing {' '.join(missing)} from the Debian packages ({why})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = _privileged(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing])
    # Refreshing the package lists is slow, so only when the cached ones no longer resolve.
    if subprocess.run(install, check=False, env=env).returncode != 0:
        subprocess.run(_privileged(["apt-get", "update", "-q"]), check=True, env=env)
        subprocess.run(install, check=True, env=env)


def ensure_test_audio_tools() -> None:
    """Install festival and three voices (Debian packages) if missing: the tests synthesise speech
    (a female and a male voice; `make eval` also pairs two male voices to test diarization)."""
    ensure_debian_packages(
        ["festival", "festvox-us-slt-hts", "festvox-kallpc16k", "festvox-kdlpc16k"], "speech for the test recordings"
    )


def ensure_prometheus() -> None:
    """Install Prometheus (Debian's package) if missing: the end-to-end tests start one that
    scrapes the services. The package's own service is not used (nor started in containers)."""
    ensure_debian_packages(["prometheus"], "a real Prometheus scraping the services in the tests")


def ensure_test_browser() -> None:
    """Install Chromium (Debian package) if missing: the dashboard's browser tests drive it."""
    ensure_debian_packages(["chromium"], "the dashboard's browser tests")


def _pg_cluster() -> tuple[str, str]:
    out = subprocess.run(["pg_lsclusters", "-h"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        ver, name, port, *_ = line.split()
        if int(port) == PG_PORT:
            return ver, name
    versions = sorted(os.listdir("/usr/lib/postgresql"), key=int)
    ver = versions[-1]
    subprocess.run(_privileged(["pg_createcluster", ver, "main", "-p", str(PG_PORT)]), check=True)
    return ver, "main"


def ensure_postgres() -> str:
    """Make sure a server answers on loopback and our dev role and database exist."""
    if not _pg_ready():
        ensure_postgres_installed()
        ver, name = _pg_cluster()
        log(f"starting PostgreSQL cluster {ver}/{name}")
        subprocess.run(_privileged(["pg_ctlcluster", ver, name, "start"]), check=True)
        RUN.mkdir(parents=True, exist_ok=True)
        (RUN / "postgres.started").write_text(f"{ver} {name}\n")
        deadline = time.monotonic() + 60
        while not _pg_ready():
            if time.monotonic() > deadline:
                raise SystemExit("PostgreSQL did not become ready")
            time.sleep(0.3)
    sql = (
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_USER}') THEN "
        f"CREATE ROLE {PG_USER} LOGIN CREATEDB PASSWORD '{PG_PASSWORD}'; END IF; END $$;"
    )
    psql = ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(PG_PORT)]
    local = ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-p", str(PG_PORT)]
    # The role is created over the local socket as the postgres superuser (peer auth).
    r = subprocess.run(_as_postgres([*local, "-c", sql]), check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"could not create role {PG_USER}: {r.stderr.strip()}")
    env = {**os.environ, "PGPASSWORD": PG_PASSWORD}
    exists = subprocess.run(
        [*psql, "-U", PG_USER, "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'"],  # noqa: S608 - constant
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()
    if exists != "1":
        subprocess.run(
            [*psql, "-U", PG_USER, "-d", "postgres", "-c", f"CREATE DATABASE {PG_DATABASE}"], check=True, env=env
        )
    return database_url()


def database_url(db: str = PG_DATABASE) -> str:
    # TLS off: the connection never leaves loopback.
    return f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{PG_PORT}/{db}?sslmode=disable"


def stop_postgres_if_started() -> None:
    marker = RUN / "postgres.started"
    if not marker.exists():
        return
    ver, name = marker.read_text().split()
    log(f"stopping PostgreSQL cluster {ver}/{name} (started by make up)")
    subprocess.run(_privileged(["pg_ctlcluster", ver, name, "stop"]), check=False)
    marker.unlink()


# --------------------------------------------------------------------------------------------
# Services (what `make up` runs in the background)
# --------------------------------------------------------------------------------------------

VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
GATEWAY_URL = os.environ.get("CALLPIPE_GATEWAY_URL", "http://127.0.0.1:8000")
# name -> (module run with `python -m`, health URL)
SERVICES: dict[str, tuple[str, str]] = {
    "gateway": ("services.gateway", f"{GATEWAY_URL}/healthz"),
    "fetcher": ("services.fetcher", "http://127.0.0.1:8001/healthz"),
    "analyzer": ("services.analyzer", "http://127.0.0.1:8002/healthz"),
    "notifier": ("services.notifier", "http://127.0.0.1:8003/healthz"),
}
# What the development stack sets on top of the embedded defaults, so a recording host and a
# callback receiver on this machine (`make demo`) work: loopback through the SSRF guards, and
# the development CA trusted besides the system's (deploy/local/dev_tls.py). Production refuses
# the allowlists.
DEV_ENV: dict[str, dict[str, str]] = {
    "fetcher": {"FETCHER_SSRF_ALLOW_NETWORKS": "127.0.0.1/32"},
    "notifier": {
        "NOTIFIER_SSRF_ALLOW_NETWORKS": "127.0.0.1/32",
        "NOTIFIER_CA_BUNDLE": str(ROOT / ".local" / "tls" / "ca-bundle.pem"),
    },
}


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback health URL
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    """Wait until ``url`` answers 200; fail as soon as ``proc`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not _healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.2)


def _pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def start_service(name: str, timeout: float = 60.0) -> None:
    module, health = SERVICES[name]
    pidfile = RUN / f"{name}.pid"
    if _pid_alive(pidfile) and _healthy(health):
        log(f"{name} already running")
        return
    logdir = STATE / "log"
    logdir.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    dev = DEV_ENV.get(name, {}) if os.environ.get("ENVIRONMENT", "development") == "development" else {}
    env = {**os.environ, **{k: v for k, v in dev.items() if k not in os.environ}}
    with open(logdir / f"{name}.log", "ab") as out:
        proc = subprocess.Popen(
            [str(VENV_PYTHON), "-m", module],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pidfile.write_text(str(proc.pid))
    wait_healthy(health, proc, timeout, f"{name} (see {logdir / (name + '.log')})")
    log(f"{name} running (pid {proc.pid}, log .local/log/{name}.log)")


def stop_service(name: str, timeout: float = 20.0) -> None:
    pidfile = RUN / f"{name}.pid"
    pid = _pid_alive(pidfile)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pidfile) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid_alive(pidfile):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        log(f"{name} stopped")
    pidfile.unlink(missing_ok=True)


def welcome() -> None:
    """What `make up` prints last: the development credentials and a request that works."""
    creds = {}
    for line in (STATE / "dev-credentials.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            creds[k] = v
    print(f"""
The stack is up. Gateway: {GATEWAY_URL}  (API docs: {GATEWAY_URL}/docs)

Development partner {creds["PARTNER_ID"]} (saved in .local/dev-credentials.env):
  x-api-key:       {creds["API_KEY"]}
  x-api-secret:    {creds["API_SECRET"]}
  x-tenant-id:     {creds["TENANT_ID"]}
  x-sub-tenant-id: {creds["SUBTENANT_ID"]}

The spec's example request, against this stack:

curl -X POST \\
  {GATEWAY_URL}/api/v1/partner/ingest/batch-call \\
  -H 'Content-Type: application/json' \\
  -H 'x-api-key: {creds["API_KEY"]}' \\
  -H 'x-api-secret: {creds["API_SECRET"]}' \\
  -H 'x-tenant-id: {creds["TENANT_ID"]}' \\
  -H 'x-sub-tenant-id: {creds["SUBTENANT_ID"]}' \\
  -d '{{
  "data": [
    {{
      "call": {{
        "id": "call123",
        "recording_url": "https://example.com/recordings/call123.mp3",
        "start_time": "2023-01-01T10:00:00Z",
        "end_time": "2023-01-01T10:30:00Z",
        "contact_number": "+1234567890"
      }},
      "agent": {{
        "id": "agent123",
        "email": "agent@example.com",
        "name": "John Doe"
      }},
      "customer": {{
        "id": "customer123",
        "name": "Jane Smith",
        "email": "customer@example.com",
        "disposition_status": "interested"
      }},
      "industry": "Technology",
      "function": "Sales",
      "callback_url": "https://partner.example.com/callback",
      "metadata": {{
        "campaign": "Q1 Outreach",
        "source": "Website"
      }}
    }}
  ]
}}'

Events land on Kafka ({default_kafka().bootstrap}) in calls.ingested.v1; the fetcher downloads each recording
into .local/blobs and publishes calls.fetched.v1, or calls.failed.v1 with the reason (example.com's
recording does not exist, so this one ends as a failure). `make down` stops everything.
""")
    dashboard = STATE / "dashboard-token.json"
    if dashboard.exists():
        url = json.loads(dashboard.read_text())["url"]
        print(f"""The insights dashboard, with a development token (it works once, within 24 hours; `make demo`
fills it with three analysed calls; docs/dashboard.md explains embedding it):

  {url}
""")


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "command",
        choices=[
            "install",
            "up",
            "down",
            "kafka-up",
            "kafka-down",
            "pg-up",
            "pg-down",
            "env",
            "status",
            "services-up",
            "services-down",
            "welcome",
            "install-test-tools",
        ],
    )
    args = p.parse_args(argv)
    kafka = default_kafka()
    match args.command:
        case "install":
            ensure_postgres_installed()
            ensure_kafka_jars()
        case "install-test-tools":
            ensure_test_audio_tools()
            ensure_prometheus()
            ensure_test_browser()
        case "up":
            ensure_postgres()
            kafka.start()
            log(f"Kafka on {kafka.bootstrap}, PostgreSQL on 127.0.0.1:{PG_PORT}")
        case "down":
            for name in reversed(SERVICES):
                stop_service(name)
            kafka.stop()
            stop_postgres_if_started()
        case "services-up":
            for name in SERVICES:
                start_service(name)
        case "services-down":
            for name in reversed(SERVICES):
                stop_service(name)
        case "welcome":
            welcome()
        case "kafka-up":
            kafka.start()
        case "kafka-down":
            kafka.stop()
        case "pg-up":
            ensure_postgres()
        case "pg-down":
            stop_postgres_if_started()
        case "env":
            print(f"export DATABASE_URL={database_url()}")
            print(f"export KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap}")
        case "status":
            print(f"kafka    {'up' if kafka.pid() else 'down'} {kafka.bootstrap}")
            print(f"postgres {'up' if _pg_ready() else 'down'} 127.0.0.1:{PG_PORT}")
            for name, (_, health) in SERVICES.items():
                print(f"{name:<8} {'up' if _healthy(health) else 'down'} {health}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
