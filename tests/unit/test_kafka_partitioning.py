"""The relay's partitioning equals Kafka's default (murmur2) partitioner, so a call's events
land where any Kafka client would put them."""

from __future__ import annotations

import os

import pytest
from aiokafka.partitioner import murmur2

from services.common.kafka import partition_for


@pytest.mark.parametrize("partitions", [1, 3, 6, 12, 64])
def test_partition_for_matches_the_java_compatible_partitioner(partitions: int) -> None:
    keys = [
        b"",
        b"a",
        b"ptn_181dfe99050de2e4/call123",
        "ptn_x/ünïcødé".encode(),
        *(os.urandom(n) for n in range(1, 80)),
    ]
    for key in keys:
        assert partition_for(key, partitions) == (murmur2(key) & 0x7FFFFFFF) % partitions
