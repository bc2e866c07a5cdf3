"""Kafka SASL/TLS settings: read from the shared environment variables, refused when incomplete,
and turned into the options every aiokafka client is created with."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from services.common.consumer import ConsumerSettings
from services.common.errors import ConfigurationError
from services.common.kafka import KafkaConnection, KafkaProbe, connection, make_producer
from services.fetcher.config import FetcherSettings
from services.notifier.config import NotifierSettings


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "kafka-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def test_sasl_ssl_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, ca_file: Path) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9093,kafka-1:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "callpipe")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(ca_file))
    for settings in (FetcherSettings(), NotifierSettings()):
        kafka = settings.kafka()
        assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in repr(kafka)
        options = kafka.options()
        assert options["bootstrap_servers"] == "kafka-0:9093,kafka-1:9093"
        assert options["security_protocol"] == "SASL_SSL"
        assert options["sasl_mechanism"] == "SCRAM-SHA-512"
        assert options["sasl_plain_username"] == "callpipe"
        assert options["sasl_plain_password"] == "s3cret-pw"
        context = options["ssl_context"]
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        # Only the CA named, not the system's: one certificate loaded.
        assert context.cert_store_stats()["x509_ca"] == 1


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    options = KafkaConnection("127.0.0.1:9092").options()
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert connection("127.0.0.1:9092") == KafkaConnection("127.0.0.1:9092")


@pytest.mark.parametrize(
    "env",
    [
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u"},
        {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"},
        {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/client.pem"},
    ],
)
def test_incomplete_security_settings_refuse_to_start(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match="Kafka security settings"):
        FetcherSettings()


def test_an_unknown_protocol_or_mechanism_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_TLS")
    with pytest.raises(ValueError, match=r"KAFKA_SECURITY_PROTOCOL|kafka_security_protocol"):
        FetcherSettings()


async def test_every_client_is_built_with_the_connection(ca_file: Path) -> None:
    kafka = KafkaConnection(
        "127.0.0.1:1",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="callpipe",
        sasl_password=SecretStr("pw"),
        ssl_cafile=str(ca_file),
    )
    producer = make_producer(kafka, "unit")
    consumer = AIOKafkaConsumer(
        **connection(ConsumerSettings(kafka=kafka, group_id="g", topics=[], dead_letter_topic="d").kafka).options()
    )
    probe = KafkaProbe(kafka, timeout_s=0.2)
    try:
        for client in (producer.client, consumer._client):
            assert client._security_protocol == "SASL_SSL"
            assert client._sasl_mechanism == "PLAIN"
            assert client._sasl_plain_username == "callpipe"
            assert client._sasl_plain_password == "pw"
            assert isinstance(client._ssl_context, ssl.SSLContext)
        # The PEM files are read once per process: every client shares one context.
        assert producer.client._ssl_context is consumer._client._ssl_context
        assert await probe.check() is False  # nothing listens there; the options did not break it
    finally:
        await probe.close()
        await consumer.stop()
        await producer.stop()
