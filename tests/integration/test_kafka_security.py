"""Kafka with SASL over TLS, for real: a dedicated broker (the local stack's pinned jars) with a
SASL_SSL listener whose certificate comes from a throw-away CA and which knows one PLAIN user.

Through the services' settings, every kind of client the services create gets in: the admin client
creating topics, the readiness probe, a producer, and the consumer runtime, which consumes an event
and publishes what its handler returns. A wrong password and an untrusted certificate are refused.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from aiokafka import AIOKafkaConsumer
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from deploy.local.stack import KafkaNode
from schemas.events import TOPIC_FETCHED, TOPIC_INGESTED, AnyEvent, dump_event, parse_event
from services.common.consumer import ConsumerRuntime, ConsumerSettings
from services.common.kafka import KafkaConnection, KafkaProbe, TopicSpec, connection, ensure_topics, make_producer
from services.common.settings import ServiceSettings
from tests.factories import ingested_event
from tests.support.infra import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="needs Java to run a dedicated broker"),
]

USER, PASSWORD = "callpipe", "kafka-test-password"


@dataclass
class SecureBroker:
    node: KafkaNode
    sasl_port: int
    ca_file: Path

    def settings(self, password: str = PASSWORD, ca_file: Path | None = None) -> ServiceSettings:
        return ServiceSettings(
            kafka_bootstrap_servers=f"127.0.0.1:{self.sasl_port}",
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username=USER,
            kafka_sasl_password=SecretStr(password),
            kafka_ssl_cafile=str(ca_file or self.ca_file),
        )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    home = tmp_path_factory.mktemp("kafka-sasl")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    # Kafka's PEM key store wants the key as PKCS#8, followed by the certificate chain.
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    keystore = home / "server.pem"
    keystore.write_bytes(pkcs8 + b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    ca_file = home / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port, controller, sasl_port = free_port(), free_port(), free_port()
    jaas = (
        'org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="broker-pw"'
        f' user_broker="broker-pw" user_{USER}="{PASSWORD}";'
    )
    node = KafkaNode(
        home / "kafka",
        port,
        controller,
        heap="256m",
        overrides={
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller},"
            f"SASL_SSL://127.0.0.1:{sasl_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(keystore),
        },
    )
    node.start()
    try:
        yield SecureBroker(node, sasl_port, ca_file)
    finally:
        node.stop()


async def read(kafka: KafkaConnection, topic: str, count: int, timeout: float = 30) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, **kafka.options(), auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            while len(values) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    values += [r.value for r in records]
    finally:
        await consumer.stop()
    return values


async def test_every_client_authenticates_over_tls(broker: SecureBroker) -> None:
    kafka = broker.settings().kafka()
    ingested, fetched = f"sec.{TOPIC_INGESTED}", f"sec.{TOPIC_FETCHED}"
    await ensure_topics(kafka, [TopicSpec(ingested, 2), TopicSpec(fetched, 2), TopicSpec("sec.dlq", 1)])
    probe = KafkaProbe(kafka)
    try:
        assert await probe.check() is True
    finally:
        await probe.close()

    event = ingested_event()
    producer = make_producer(kafka, "security-test")
    await producer.start()
    try:
        await (await producer.send(ingested, dump_event(event), key=event.key()))
    finally:
        await producer.stop()

    handled: list[AnyEvent] = []

    async def handler(received: AnyEvent) -> list[AnyEvent]:
        if received.source == "security-test":
            return []  # its own output, read back
        handled.append(received)
        return [received.model_copy(update={"source": "security-test"})]

    out = make_producer(kafka, "security-runtime")
    await out.start()
    runtime = ConsumerRuntime(
        ConsumerSettings(
            kafka=kafka, group_id="sec.group", topics=[ingested], dead_letter_topic="sec.dlq", topic_prefix="sec."
        ),
        handler,
        out,
    )
    await runtime.start()
    try:
        async with asyncio.timeout(60):
            while not handled:
                await asyncio.sleep(0.2)
    finally:
        await runtime.stop()
        await out.stop()
    assert handled[0].call_id == event.call_id
    # The runtime's output went out through the authenticated producer (to the ingested topic of
    # the handler's event type: the same event, republished).
    published = [parse_event(v) for v in await read(kafka, ingested, 2)]
    assert {e.source for e in published} >= {"security-test"}


async def test_a_wrong_password_or_an_untrusted_certificate_is_refused(broker: SecureBroker, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    for settings in (broker.settings(password="wrong"), broker.settings(ca_file=other_ca)):
        probe = KafkaProbe(settings.kafka(), timeout_s=5)
        try:
            assert await probe.check() is False
        finally:
            await probe.close()
    # And the plaintext listener of the same broker still needs no credentials, so the refusals
    # above are the SASL/TLS settings at work, not a broker that refuses everyone.
    plain = connection(broker.node.bootstrap)
    probe = KafkaProbe(plain)
    try:
        assert await probe.check() is True
    finally:
        await probe.close()
