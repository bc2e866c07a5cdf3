"""Where the tests' Kafka and PostgreSQL come from, in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` from the environment (an existing stack);
2. testcontainers, when a Docker engine answers (Kafka at the version pinned in
   ``deploy/local/pom.xml``, PostgreSQL 15);
3. the local stack of ``deploy/local/stack.py`` (started if needed, left running for reuse).

Each source is decided per service, so e.g. an external PostgreSQL can pair with local Kafka.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
from testcontainers.community.postgres import PostgresContainer
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs

from deploy.local import stack

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    database_url: str
    kafka_source: str
    postgres_source: str


def pinned_kafka_version() -> str:
    pom = (ROOT / "deploy" / "local" / "pom.xml").read_text()
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert match, "kafka.version missing from deploy/local/pom.xml"
    return match.group(1)


def docker_available() -> bool:
    try:
        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def kafka_container() -> Iterator[str]:
    """Apache Kafka (KRaft, single node) in Docker, advertised on a host port chosen up front."""
    port = free_port()
    container = (
        DockerContainer(f"apache/kafka:{pinned_kafka_version()}")
        .with_bind_ports(9092, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def postgres_container() -> Iterator[str]:
    with PostgresContainer("postgres:15-alpine", driver=None) as pg:
        yield pg.get_connection_url()


@contextlib.contextmanager
def resolve_infra() -> Iterator[Infra]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    kafka_source = postgres_source = "env"
    with contextlib.ExitStack() as stack_:
        use_docker = (not kafka or not database) and docker_available()
        if not kafka:
            if use_docker:
                kafka, kafka_source = stack_.enter_context(kafka_container()), "testcontainers"
            else:
                node = stack.default_kafka()
                node.start()
                kafka, kafka_source = node.bootstrap, "local"
        if not database:
            if use_docker:
                database, postgres_source = stack_.enter_context(postgres_container()), "testcontainers"
            else:
                database, postgres_source = stack.ensure_postgres(), "local"
        yield Infra(kafka, database, kafka_source, postgres_source)
