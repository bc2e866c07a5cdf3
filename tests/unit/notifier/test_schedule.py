"""The retry schedule, Retry-After, and which URLs are refused before any connection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from services.common import ssrf
from services.common.crypto import new_key
from services.common.errors import ConfigurationError
from services.common.http import parse_retry_after
from services.notifier.config import NotifierSettings
from services.notifier.dispatcher import RetryPolicy, check_target
from services.notifier.errors import DeliveryRefused


def test_delays_grow_exponentially_within_the_jitter() -> None:
    policy = RetryPolicy(attempts=4, base_s=30, factor=4, jitter=0.2)
    for _ in range(200):
        first, second, third = (policy.delay(n) for n in (1, 2, 3))
        assert 24 <= first <= 36 and 96 <= second <= 144 and 384 <= third <= 576
        assert first < second < third


def test_delays_are_capped() -> None:
    assert RetryPolicy(base_s=30, factor=4, max_s=60, jitter=0).delay(5) == 60


def test_retry_after_is_a_floor_and_capped() -> None:
    policy = RetryPolicy(base_s=0.2, factor=2, jitter=0, retry_after_max_s=100)
    assert policy.delay(1, retry_after_s=5) == 5
    assert policy.delay(1, retry_after_s=0) == 0.2
    assert policy.delay(1, retry_after_s=10_000) == 100


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("7") == 7
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://partner.example.com/cb", "https_required"),
        ("ftp://partner.example.com/cb", "unsupported_scheme"),
        ("https://127.0.0.1/cb", "blocked_address"),
        ("https://169.254.169.254/latest", "blocked_address"),
        ("https://2130706433/cb", "blocked_address"),
        ("https:///cb", "invalid_url"),
    ],
)
def test_refused_targets(url: str, code: str) -> None:
    with pytest.raises(DeliveryRefused) as refused:
        check_target(url, ssrf.SsrfPolicy(schemes=frozenset({"https"})), allow_http=False)
    assert refused.value.code == code


def test_allowed_targets() -> None:
    check_target("https://partner.example.com/cb", ssrf.SsrfPolicy(), allow_http=False)
    loopback = ssrf.SsrfPolicy(allow_networks=ssrf.parse_networks("127.0.0.1/32"))
    check_target("http://127.0.0.1:8080/cb", loopback, allow_http=True)


KEYS = f"prod:{new_key()}"


def test_development_allowances_are_refused_in_production() -> None:
    production = {"environment": "production", "database_url": "postgresql://x@db/p", "secrets_encryption_keys": KEYS}
    with pytest.raises(ConfigurationError, match="NOTIFIER_ALLOW_HTTP"):
        NotifierSettings(**production, allow_http=True)
    with pytest.raises(ConfigurationError, match="SSRF_ALLOW_NETWORKS"):
        NotifierSettings(**production, ssrf_allow_networks="127.0.0.0/8")
    settings = NotifierSettings(**production)
    assert settings.timeout_s == 15 and settings.delivery_attempts == 4 and settings.lease == 45
