"""The clients' handling of what a server or the network can do: retries with back-off that
honours Retry-After, typed errors in the API's shape, and telling a request that cannot have
taken effect from one that may have."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from scripted_server import Answer, scripted_server

from callpipe_client import (
    AsyncClient,
    Client,
    ClientConfig,
    ConfigurationError,
    NotFound,
    RateLimited,
    RetryEvent,
    RetryPolicy,
    ServerError,
    TransportError,
    ValidationFailed,
)

FAST = RetryPolicy(attempts=3, base_s=0.01, max_s=0.05, retry_after_max_s=2, rate_limit_wait_s=3)
STATUS = {
    "success": True,
    "data": {"call_id": "c1", "status": "received", "timestamps": {"received": "2026-01-01T00:00:00.5Z"}},
}


def config(base_url: str, **overrides: Any) -> ClientConfig:
    values: dict[str, Any] = dict(
        base_url=base_url, api_key="ck_test", api_secret="cs_test", tenant_id="t1", subtenant_id="s1", retry=FAST
    )
    values.update(overrides)
    return ClientConfig(**values)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_5xx_and_429_are_retried_and_retry_after_is_honoured() -> None:
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=4), usegmt=True)
    events: list[RetryEvent] = []
    with scripted_server(
        Answer(408, {"success": False, "message": "Request body not received in time"}),
        Answer(503, b"<html>busy</html>", {"content-type": "text/html"}),
        Answer(
            429, {"success": False, "message": "Rate limit exceeded. Try again in 60 seconds."}, {"Retry-After": "1"}
        ),
        Answer(
            429, {"success": False, "message": "Rate limit exceeded. Try again in 60 seconds."}, {"Retry-After": later}
        ),
        Answer(200, STATUS, {"Date": "Fri, 01 Jan 2100 00:00:07 GMT"}),
    ) as (url, script):
        started = time.monotonic()
        with Client(config(url), on_retry=events.append) as client:
            call = client.get_call("a/b?c")
            assert client.server_date == datetime(2100, 1, 1, 0, 0, 7, tzinfo=timezone.utc)  # the latest seen
        elapsed = time.monotonic() - started
    assert call.call_id == "c1" and call.timestamps.received is not None
    assert [e.reason for e in events] == ["request_timeout", "server_error", "rate_limited", "rate_limited"]
    assert events[2].wait_s == 1.0 and 0 < events[3].wait_s <= 2.0
    assert elapsed >= 1.0 + events[3].wait_s - 0.05
    # Credentials, tenancy and the id as one escaped path segment on every try.
    method, path, headers, _ = script.requests[0]
    assert (method, path) == ("GET", "/api/v1/partner/calls/a%2Fb%3Fc")
    assert headers["x-api-key"] == "ck_test" and headers["x-tenant-id"] == "t1"


def test_errors_are_typed_and_carry_the_apis_message_and_errors() -> None:
    invalid = {
        "success": False,
        "message": "Validation failed",
        "errors": [{"field": "limit", "message": "limit must be between 1 and 200"}],
    }
    with (
        scripted_server(
            Answer(404, {"success": False, "message": "Call not found"}),
            Answer(422, invalid),
            Answer(500, {"success": False, "message": "Internal server error"}),
        ) as (url, script),
        Client(config(url, retry=RetryPolicy(attempts=1))) as client,
    ):
        with pytest.raises(NotFound) as missing:
            client.get_call("nope")
        with pytest.raises(ValidationFailed) as refused:
            client.list_calls(limit=500)
        with pytest.raises(ServerError) as failed:
            client.get_call("x")
    assert missing.value.message == "Call not found" and missing.value.status_code == 404
    assert [(e.field, e.message) for e in refused.value.errors] == [("limit", "limit must be between 1 and 200")]
    assert failed.value.message == "Internal server error"
    assert script.requests[1][1] == "/api/v1/partner/calls?limit=500"


def test_a_rate_limit_that_does_not_let_up_is_raised_after_the_patience_is_spent() -> None:
    refusal = Answer(
        429, {"success": False, "message": "Rate limit exceeded. Try again in 60 seconds."}, {"Retry-After": "2"}
    )
    with scripted_server() as (url, script):
        script.default = refusal
        with Client(config(url)) as client, pytest.raises(RateLimited) as exc:
            client.get_call("c1")
    assert exc.value.retry_after_s == 2.0
    assert len(script.requests) == 2  # waited 2 s once; another 2 s would pass the 3 s patience


def test_a_refused_connection_cannot_have_taken_effect_a_timeout_may_have() -> None:
    with Client(config(f"http://127.0.0.1:{closed_port()}")) as client, pytest.raises(TransportError) as refused:
        client.get_call("c1")
    assert refused.value.sent is False
    # A 408 says nothing was recorded: sent again even where a timeout would not be.
    with scripted_server(Answer(408, {"success": False, "message": "Request body not received in time"})) as (
        url,
        script,
    ):
        with Client(config(url)) as client:
            client.request("POST", "/api/v1/partner/ingest/batch-call", content=b"{}", retry_ambiguous=False)
        assert len(script.requests) == 2
    with (
        scripted_server(Answer(200, STATUS, delay_s=1.0)) as (url, script),
        Client(config(url, timeout_s=0.3)) as client,
        pytest.raises(TransportError) as slow,
    ):
        client.request("POST", "/api/v1/partner/ingest/batch-call", content=b"{}", retry_ambiguous=False)
    assert slow.value.sent is True
    assert len(script.requests) == 1  # not tried again: it may have been recorded


async def test_the_async_client_shares_a_rate_limit_pause_across_requests() -> None:
    """After one request meets a 429, the others wait too instead of meeting it in turn."""
    refusal = Answer(
        429, {"success": False, "message": "Rate limit exceeded. Try again in 60 seconds."}, {"Retry-After": "1"}
    )
    with scripted_server(refusal) as (url, script):
        script.default = Answer(200, STATUS)
        async with AsyncClient(config(url)) as client:
            first = asyncio.create_task(client.get_call("c1"))
            await asyncio.sleep(0.2)  # the 429 has been answered: the pause is on
            started = time.monotonic()
            await client.get_call("c2")
            waited = time.monotonic() - started
            await first
    assert waited >= 0.7
    assert len(script.requests) == 3


def test_settings_come_from_arguments_the_environment_or_a_file(tmp_path: Any) -> None:
    creds = tmp_path / "dev.env"
    creds.write_text(
        "# made by make up\nAPI_KEY=ck_file\nAPI_SECRET='cs_file'\nTENANT_ID=t-file\nexport SUBTENANT_ID=s-file\n"
    )
    env = {"CALLPIPE_ENV_FILE": str(creds), "CALLPIPE_TENANT_ID": "t-env", "CALLPIPE_TIMEOUT_S": "7"}
    cfg = ClientConfig.from_env(env, subtenant_id="s-arg")
    assert (cfg.api_key, cfg.api_secret, cfg.tenant_id, cfg.subtenant_id, cfg.timeout_s) == (
        "ck_file",
        "cs_file",
        "t-env",
        "s-arg",
        7.0,
    )
    assert "cs_file" not in repr(cfg)
    with pytest.raises(ConfigurationError):
        ClientConfig(base_url="ftp://x")
    with pytest.raises(ConfigurationError, match="API key"):
        Client(ClientConfig(tenant_id="t")).get_call("x")
