"""A PostgreSQL cluster of a test's own, which the test may stop, crash and restart without
touching the shared server other tests use.

It is the Debian-packaged server's binaries (``/usr/lib/postgresql/<version>/bin``, or wherever
``pg_config --bindir`` points) run on a fresh data directory with ``initdb``/``pg_ctl``: nothing
is registered with ``pg_createcluster``, so nothing outlives the test but a temporary directory
that ``destroy`` removes. PostgreSQL refuses to run as root, so when the tests run as root the
server runs as the ``postgres`` user (``runuser``), in a directory that user owns.

Typical use::

    with pg_cluster() as pg:          # initialised, started, role and database created
        migrate(pg.url)
        pg.restart(mode="immediate")  # a crash: WAL recovery on the way up
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.support.infra import free_port

USER = "callpipe"
PASSWORD = "callpipe"  # a loopback-only throw-away cluster
DATABASE = "callpipe"


def bin_dir() -> Path:
    """The newest installed server's binaries."""
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], check=False, capture_output=True, text=True).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    versions = sorted((p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()), reverse=True)
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries (initdb) found")
    return versions[0]


def available() -> bool:
    try:
        bin_dir()
    except RuntimeError:
        return False
    return os.geteuid() != 0 or _has_postgres_user()


def _has_postgres_user() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return shutil.which("runuser") is not None


@dataclass
class PgCluster:
    home: Path
    port: int

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def logfile(self) -> Path:
        return self.home / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}?sslmode=disable"

    @property
    def _superuser_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(bin_dir() / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout)

    def init(self) -> None:
        """A fresh data directory; loopback only, trust authentication (a throw-away cluster)."""
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.home, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.home}'",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "logging_collector": "off",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("".join(f"{k} = {v}\n" for k, v in settings.items()))

    def start(self, timeout: float = 60) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", str(int(timeout)), "start")
        self._wait_ready(timeout)

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown that ends every session; ``immediate``: a crash (no
        checkpoint, WAL recovery at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast", down_s: float = 0.0) -> None:
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run(
                [str(bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False
            )
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on port {self.port} not ready; see {self.logfile}")
            time.sleep(0.2)

    async def create_database(self) -> None:
        """The services' role and database, as on the shared server."""
        conn = await asyncpg.connect(self._superuser_url)
        try:
            await conn.execute(f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
            await conn.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}")
        finally:
            await conn.close()

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """An initialised and running cluster with the ``callpipe`` role and database (not migrated);
    stopped and deleted on exit. Its directory is outside pytest's (root-only) tmp tree so the
    ``postgres`` user can reach it when the tests run as root."""
    home = Path(tempfile.mkdtemp(prefix="callpipe-pg-"))
    cluster = PgCluster(home, free_port())
    try:
        cluster.init()
        cluster.start()
        asyncio.run(cluster.create_database())
        yield cluster
    finally:
        cluster.destroy()
