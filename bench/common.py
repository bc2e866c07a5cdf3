"""What the benchmarks share: logging, CPU accounting per process tree, fresh databases,
process control and Kafka topic sizes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deploy.local import stack  # noqa: E402
from services.common.db import apply_migrations  # noqa: E402

OUT = ROOT / ".local" / "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    sys.stderr.write(f"[bench] {msg}\n")
    sys.stderr.flush()


# -- CPU and memory accounting ----------------------------------------------------------------


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    # utime, stime, cutime, cstime (children reaped by this process count too)
    return sum(int(x) for x in fields[11:15])


def tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def pids_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return pids


def _machine_busy_ticks() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle


class CpuMeter:
    """Cores used per named group of processes between ``start`` and ``stop``.

    Groups are resolved again at ``stop``, and a process born in between counts from zero, so
    worker processes spawned under load (uvicorn workers, probe pools) are included. ``machine``
    is everything, the load generator included."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self._groups = groups
        self._before: dict[int, int] = {}
        self._t0 = 0.0
        self._machine0 = 0

    def start(self) -> None:
        pids = {p for resolve in self._groups.values() for p in resolve()}
        self._before = {p: _cpu_ticks(p) for p in pids}
        self._machine0 = _machine_busy_ticks()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t0
        used = {
            name: sum(max(0, _cpu_ticks(p) - self._before.get(p, 0)) for p in set(resolve())) / CLK_TCK
            for name, resolve in self._groups.items()
        }
        used["machine"] = (_machine_busy_ticks() - self._machine0) / CLK_TCK
        return {name: round(seconds / elapsed, 2) for name, seconds in used.items()}


# -- servers ---------------------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


# -- processes and databases -----------------------------------------------------------------


def start_service(cmd: list[str], env: dict[str, str], log_path: Path, health: str) -> subprocess.Popen[bytes]:
    """``cmd`` in its own session with ``env`` added, output to ``log_path``, once ``health`` answers."""
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack.wait_healthy(health, proc, 120, f"{cmd} (see {log_path})")
    return proc


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, 15)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


# -- load ------------------------------------------------------------------------------------


async def fresh_database(name: str, services: list[str]) -> str:
    """Drop and recreate ``name`` on the local server, with ``services``' migrations applied."""
    conn = await asyncpg.connect(stack.ensure_postgres())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = stack.database_url(name)
    for service in services:
        await apply_migrations(SecretStr(url), service, f"services.{service}.migrations")
    return url


# -- Kafka -----------------------------------------------------------------------------------


async def topic_size(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        await consumer.stop()


async def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()
