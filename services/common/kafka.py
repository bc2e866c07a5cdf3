"""Kafka plumbing: the one place client options are built (``KafkaConnection``: brokers, SASL,
TLS), the one producer configuration, topic creation and a reachability probe."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field
from typing import Literal

import murmurhash2
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

log = logging.getLogger(__name__)

#: The largest record callpipe puts on Kafka: the producers' ``max_request_size`` and the
#: ``max.message.bytes`` every callpipe topic is created with. A call's ``calls.ingested.v1``
#: event is kept to a quarter of it at ingestion (``MAX_CALL_EVENT_BYTES``), so the later stages,
#: which carry the ingested call along with what they add (the transcript, mostly), fit too.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_CALL_EVENT_BYTES = MAX_MESSAGE_BYTES // 4

#: Errors no retry can fix: Kafka refuses the record itself.
PERMANENT_ERRORS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidMessageError,
    CorruptRecordException,
    InvalidTimestampError,
)


def is_permanent(exc: BaseException) -> bool:
    """Whether Kafka will refuse this record however often it is sent."""
    return isinstance(exc, PERMANENT_ERRORS)


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class KafkaConnection:
    """How every Kafka client of a service reaches the cluster: brokers, and SASL and TLS when the
    cluster asks for them. ``options()`` gives the keyword arguments every aiokafka client takes
    (producers, consumers, the admin client, the readiness probe), so no client can be created
    without the credentials. Built from the shared settings by ``ServiceSettings.kafka()``."""

    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = field(default=None, repr=False)
    # PEM files: the CA that signed the brokers' certificates (else the system's CAs), and a client
    # certificate and key for clusters that authenticate clients by certificate (mutual TLS).
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: SecretStr | None = field(default=None, repr=False)
    ssl_check_hostname: bool = True
    # retention.ms of the topics this client creates (None: the broker's default).
    topic_retention_ms: int | None = None

    def __post_init__(self) -> None:
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and (self.sasl_mechanism is None or not self.sasl_username or self.sasl_password is None):
            raise ValueError(f"{self.security_protocol} needs a SASL mechanism, username and password")
        if self.ssl_certfile and not self.ssl_keyfile:
            raise ValueError("a TLS client certificate needs its key file")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The verifying TLS context of a TLS protocol (reads the PEM files: call at start-up)."""
        if not self.uses_tls:
            return None
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.ssl_cafile,
            certfile=self.ssl_certfile,
            keyfile=self.ssl_keyfile,
            password=self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
        )
        context.check_hostname = self.ssl_check_hostname
        return context

    def options(self) -> dict[str, object]:
        """Keyword arguments for any aiokafka client: brokers, protocol, SASL, TLS context."""
        options: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            options["ssl_context"] = _context_cache.get(self)
        if self.security_protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        return options


class _ContextCache:
    """One TLS context per connection settings and process: the PEM files are read once."""

    def __init__(self) -> None:
        self._contexts: dict[KafkaConnection, ssl.SSLContext] = {}

    def get(self, connection: KafkaConnection) -> ssl.SSLContext | None:
        context = self._contexts.get(connection)
        if context is None:
            context = connection.ssl_context()
            if context is not None:
                self._contexts[connection] = context
        return context


_context_cache = _ContextCache()

#: What the Kafka helpers accept: a connection, or (tests, tools) a plaintext bootstrap string.
Kafka = KafkaConnection | str


def connection(kafka: Kafka) -> KafkaConnection:
    """``kafka`` as a connection; a plain string is a bootstrap list on a plaintext cluster."""
    return kafka if isinstance(kafka, KafkaConnection) else KafkaConnection(kafka)


def make_producer(kafka: Kafka, client_id: str, **overrides: object) -> AIOKafkaProducer:
    """A producer that never reports success before every in-sync replica has the record.

    ``acks="all"`` with idempotence: retries after a lost ack cannot duplicate or reorder a
    partition's records.
    """
    options: dict[str, object] = {
        **connection(kafka).options(),
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "max_request_size": MAX_MESSAGE_BYTES,
        "request_timeout_ms": 15_000,
        "retry_backoff_ms": 200,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


_MURMUR2_SEED = 0x9747B28C


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java's, and aiokafka's) picks for ``key``:
    murmur2, in C; aiokafka's pure-Python murmur2 costs ~8 us per key on the hot path."""
    return (murmurhash2.murmurhash2(key, _MURMUR2_SEED) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1


async def ensure_topics(kafka: Kafka, topics: list[TopicSpec], request_timeout_s: float = 30) -> None:
    """Create the topics that do not exist yet, accepting records up to ``MAX_MESSAGE_BYTES`` and
    keeping them for the connection's ``topic_retention_ms``; existing ones are left as they are
    (README, "Data protection", says how to change an existing topic's retention)."""
    timeout_ms = int(request_timeout_s * 1000)
    admin = AIOKafkaAdminClient(**connection(kafka).options(), request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if not missing:
            return
        configs = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
        if (retention_ms := connection(kafka).topic_retention_ms) is not None:
            configs["retention.ms"] = str(retention_ms)
        new = [NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=configs) for t in missing]
        response = await admin.create_topics(new, timeout_ms=timeout_ms)
        for topic, code, *_ in response.topic_errors:
            # 36 = TOPIC_ALREADY_EXISTS: another replica won the race, which is fine.
            if code not in (0, 36):
                raise KafkaError(f"could not create topic {topic}: error code {code}")
        log.info("topics created", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()


class KafkaProbe:
    """Answers "is a broker reachable?" for readiness checks, reusing one client."""

    def __init__(self, kafka: Kafka, timeout_s: float = 2.0) -> None:
        self._kafka = connection(kafka)
        self._timeout_s = timeout_s
        self._client: AIOKafkaClient | None = None

    async def check(self) -> bool:
        timeout = self._timeout_s
        try:
            if self._client is None:
                client = AIOKafkaClient(**self._kafka.options(), request_timeout_ms=int(timeout * 1000))
                try:
                    await asyncio.wait_for(client.bootstrap(), timeout)
                except BaseException:
                    await client.close()
                    raise
                self._client = client
                return True
            await asyncio.wait_for(self._client.fetch_all_metadata(), timeout)
        except (KafkaError, OSError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
