"""The dashboard's projector: its own consumer group over the pipeline's call events.

It keeps one row per call (``dashboard_calls``) and the aggregates the Overview and Agents pages
read (``dashboard_agg``, ``dashboard_agg_params``). A call is added to the aggregates once, when
it first reaches a final state, in the same transaction that marks it counted: whatever Kafka
redelivers, and in whatever order the topics deliver, a call counts once.

Its own group (not a hook in the status read model) so each view commits its own offsets and can
be rebuilt on its own: reset the group's offsets and truncate the dashboard tables.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Protocol

from schemas.events import (
    TOPIC_ANALYZED,
    TOPIC_ERASED,
    TOPIC_FAILED,
    TOPIC_FETCHED,
    TOPIC_INGESTED,
    AnyEvent,
    CallErased,
)
from services.common.consumer import ConsumerSettings, dead_letter_topic
from services.common.kafka import TopicSpec
from services.common.worker import KafkaWorker
from services.gateway.config import GatewaySettings
from services.gateway.dashboard.facts import CallFact, fact_of

TOPICS = (TOPIC_INGESTED, TOPIC_FETCHED, TOPIC_ANALYZED, TOPIC_FAILED, TOPIC_ERASED)
GROUP_ID = "gateway-dashboard"


class FactStore(Protocol):
    async def fold(self, fact: CallFact) -> bool: ...
    async def erase(self, partner_id: str, call_id: str) -> bool: ...


async def project(event: AnyEvent, store: FactStore) -> Sequence[AnyEvent]:
    """Consumer handler: fold the event into the dashboard's tables; publishes nothing. An
    erased call's row is deleted (again: the erasure request already did), and nothing of an
    erased call is folded afterwards."""
    if isinstance(event, CallErased):
        await store.erase(event.partner_id, event.call_id)
        return []
    fact = fact_of(event)
    if fact is not None:
        await store.fold(fact)
    return []


def projector_worker(settings: GatewaySettings, store: FactStore, *, concurrency: int = 64) -> KafkaWorker:
    """The projector's consumer (group ``<prefix>gateway-dashboard``, dead letters to
    ``gateway-dashboard.dlq``); every gateway process that hosts the read model hosts it too."""
    group = settings.kafka_topic_prefix + GROUP_ID
    dead_letter = dead_letter_topic(group)
    partitions, replicas = settings.kafka_topic_partitions, settings.kafka_replication_factor
    return KafkaWorker(
        ConsumerSettings(
            kafka=settings.kafka(),
            group_id=group,
            topics=[settings.topic(t) for t in TOPICS],
            dead_letter_topic=dead_letter,
            topic_prefix=settings.kafka_topic_prefix,
            client_id="gateway-dashboard",
            concurrency=concurrency,
        ),
        functools.partial(project, store=store),
        topics=[TopicSpec(settings.topic(t), partitions, replicas) for t in TOPICS]
        + [TopicSpec(dead_letter, partitions, replicas)],
    )
