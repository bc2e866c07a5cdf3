"""Infrastructure the fault tests may break: a Kafka broker and a PostgreSQL cluster of their own
(never the shared ones other tests use), both really stopped and restarted by the tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.stack import KafkaNode
from tests.support import db, pg_cluster
from tests.support.infra import free_port


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[KafkaNode]:
    if shutil.which("java") is None:
        pytest.skip("needs Java to run a dedicated broker")
    node = KafkaNode(tmp_path / "kafka", free_port(), free_port(), heap="256m")
    node.start()
    yield node
    node.stop()


@pytest.fixture
def postgres() -> Iterator[pg_cluster.PgCluster]:
    """A dedicated cluster with the callpipe role and database, every service's migrations applied."""
    if not pg_cluster.available():
        pytest.skip("needs the PostgreSQL server binaries (initdb, pg_ctl)")
    with pg_cluster.pg_cluster() as cluster:
        db.migrate(cluster.url)
        yield cluster
