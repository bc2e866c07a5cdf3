"""Hostile input: schemathesis against the gateway's own ``/openapi.json``.

The gateway runs as its own process (``python -m services.gateway``, uvicorn, the real lifespan,
PostgreSQL and Kafka), and every operation it documents is fuzzed with valid credentials: the
partner's key and secret and a tenant and subtenant are set on every request, everything else
(bodies, query strings, path parameters) is generated, in positive and negative modes, through
schemathesis' examples, coverage and fuzzing phases. Operations are discovered from the schema, so
routes added later are fuzzed without touching this file. The schema is the app's own
(``create_app().openapi()``, at import: schemathesis' fixture-based loader does not work with
pytest 9), and ``test_the_fuzzed_schema_is_the_served_one`` checks the process serves exactly it.

Checked on every response:

- ``not_a_server_error``: no 5xx, ever;
- the spec's error shape (``error_shape`` below): every 4xx is ``{"success": false, "message":
  str}`` and nothing else, plus ``errors: [{field, message}, ...]`` (non-empty, strings only)
  exactly when the message is ``Validation failed``;
- ``status_code_conformance``, ``content_type_conformance``, ``response_headers_conformance`` and
  ``response_schema_conformance``: answers are documented, and conform to the documented schema
  where one is given (the 200 of ingestion and every error model);
- ``negative_data_rejection``: data the schema calls invalid is refused with a 4xx;
- ``ignored_auth``: without the credentials every operation answers 403 (schemathesis drops the
  security headers itself).

Not checked: ``positive_data_acceptance`` (schema-valid data may still be refused by a rule the
schema cannot express, e.g. ``end_time`` after ``start_time``, a calendar date inside the
timestamp pattern, or a call id that does not exist for ``GET /calls/{id}``), and the stateful
phase (the schema declares no links).

Bounded and reproducible: ``derandomize`` (the same examples every run, no example database),
``max_examples`` per operation, no shrinking (a failure is reported as found). Its first run found
two kinds of 500 (integers beyond 64 bits, U+0000 in strings); they are refused now, and
``test_hostile_values_are_refused_in_the_spec_shape`` keeps one request per place they reached.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from tests.factories import batch
from tests.support.gateway import INGEST, PartnerCreds, create_partner, gateway_process
from tests.support.infra import Infra

pytestmark = pytest.mark.slow

# Per operation. Together with the coverage phase's own deterministic cases this keeps the whole
# run well under a minute on the 2-core development machine.
MAX_EXAMPLES = 60

GENERIC_500 = {"success": False, "message": "Internal server error"}
FORBIDDEN = {"success": False, "message": "Forbidden"}


class Fuzzed:
    """What the run saw, for the summary printed at the end (``-s`` to see it)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.statuses: dict[str, dict[int, int]] = {}

    def record(self, label: str, status: int) -> None:
        self.calls[label] = self.calls.get(label, 0) + 1
        by_status = self.statuses.setdefault(label, {})
        by_status[status] = by_status.get(status, 0) + 1


SEEN = Fuzzed()


@pytest.fixture(scope="module")
def fuzz_gateway(infra: Infra, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway process of this module's own (topic prefix of its own); yields its base URL."""
    settings = GatewaySettings(
        environment="test",
        database_url=database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        kafka_topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        kafka_topic_partitions=1,
    )
    log = tmp_path_factory.mktemp("fuzz") / "gateway.log"
    try:
        with gateway_process(settings, log) as base_url:
            yield base_url
    finally:
        # A 5xx is logged with its traceback by the gateway; show the tail when something failed.
        text = log.read_text(errors="replace") if log.exists() else ""
        errors = [line for line in text.splitlines() if '"levelname": "ERROR"' in line or "Traceback" in line]
        if errors:
            print("\n".join(["gateway errors during the fuzz run:", *errors[-20:]]))  # noqa: T201


@pytest.fixture(scope="module")
def fuzz_partner(database_url: str) -> PartnerCreds:
    # A limit no fuzz run reaches: 429s would hide what the rest of the request would have done.
    return asyncio.run(create_partner(database_url, rate_limit=1_000_000, name="Fuzz partner"))


def error_shape(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """Every error answer in the spec's shape, and nothing internal in it."""
    status = response.status_code
    if status < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"HTTP {status} answered a body that is not JSON: {response.content[:200]!r}") from None
    assert isinstance(body, dict), f"HTTP {status}: {body!r}"
    assert body.get("success") is False, f"HTTP {status}: success is not false: {body!r}"
    message = body.get("message")
    assert isinstance(message, str) and message, f"HTTP {status}: no message: {body!r}"
    if status >= 500:
        assert body == GENERIC_500, f"HTTP {status} says more than the generic 500: {body!r}"
        return True
    if message == "Validation failed":
        assert status == 422, f"HTTP {status} with the validation message: {body!r}"
        assert set(body) == {"success", "message", "errors"}, f"HTTP 422 with extra fields: {sorted(body)}"
        errors = body["errors"]
        assert isinstance(errors, list) and errors, f"HTTP 422 without errors: {body!r}"
        for error in errors:
            assert isinstance(error, dict) and set(error) == {"field", "message"}, f"bad error item: {error!r}"
            assert all(isinstance(v, str) and v for v in error.values()), f"bad error item: {error!r}"
    else:
        assert set(body) == {"success", "message"}, f"HTTP {status} with extra fields: {sorted(body)}"
    if status == 429:
        assert response.headers.get("retry-after"), "429 without Retry-After"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]

# The schema the gateway serves at /openapi.json, built by the app itself (building the app opens
# nothing; ``test_the_fuzzed_schema_is_the_served_one`` checks the process serves the same).
OPENAPI = create_app(GatewaySettings(environment="test")).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, allow_x00=True)
# The schema documents ``scope`` as an optional string (it is required, tenant or subtenant): without
# a valid one every PUT stops at "scope" and its body is never looked at.
schema.config.update(parameters={"query.scope": "tenant"})

_UTC_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|\+00:00)$")


@schema.hook
def map_body(context: Any, body: Any) -> Any:
    """Two rules the schema cannot express (a real calendar date, ``end_time`` after ``start_time``)
    refuse nearly every generated batch, so the success path would never be fuzzed. Timestamps that
    already match the schema's pattern are replaced by a valid pair (still matching it, so a case
    stays exactly as valid or invalid as the schema says); anything else is left as generated."""
    data = body.get("data") if isinstance(body, dict) else None
    for item in data if isinstance(data, list) else []:
        call = item.get("call") if isinstance(item, dict) else None
        if not isinstance(call, dict):
            continue
        start, end = call.get("start_time"), call.get("end_time")
        if (
            isinstance(start, str)
            and isinstance(end, str)
            and _UTC_TIMESTAMP.match(start)
            and _UTC_TIMESTAMP.match(end)
        ):
            call["start_time"], call["end_time"] = "2023-01-01T10:00:00Z", "2023-01-01T10:30:00Z"
    return body


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported as found
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_survives_fuzzing(case: Any, fuzz_gateway: str, fuzz_partner: PartnerCreds) -> None:
    # Valid credentials, given as explicit auth (so ``ignored_auth`` probes without them), and a
    # valid tenant and subtenant on the case itself (what was generated there is replaced).
    credentials = {"x-api-key": fuzz_partner.api_key, "x-api-secret": fuzz_partner.api_secret}
    tenancy = {"x-tenant-id": "tenant1", "x-sub-tenant-id": "subtenant1"}
    generated = {k: v for k, v in (case.headers or {}).items() if k.lower() not in credentials}
    case.headers = {**generated, **tenancy}
    response = case.call(base_url=fuzz_gateway, headers=credentials, timeout=30)
    SEEN.record(case.operation.label, response.status_code)
    case.validate_response(response, checks=CHECKS, additional_checks=[error_shape], headers=credentials)


def test_the_fuzzed_schema_is_the_served_one(fuzz_gateway: str) -> None:
    with httpx.Client(base_url=fuzz_gateway) as client:
        served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(OPENAPI))


def test_fuzz_summary() -> None:
    """Every documented operation was fuzzed (runs after the fuzz test, in file order)."""
    if not SEEN.calls:
        pytest.skip("the fuzz test was not selected")
    operations = [result.ok().label for result in schema.get_all_operations()]
    print("\nschemathesis:", json.dumps({"examples": SEEN.calls, "statuses": SEEN.statuses}, indent=1))  # noqa: T201
    missing = [label for label in operations if label not in SEEN.calls and not label.startswith("GET /healthz")]
    assert not missing, f"operations never called: {missing}"


BIG = 2**64  # one past what a 64-bit integer holds (JSON itself has no limit)
CONFIG = "/api/v1/partner/analysis-config"
CALLS = "/api/v1/partner/calls"


def _ingest(**overrides: Any) -> tuple[str, str, dict[str, str] | None, Any]:
    return "POST", INGEST, None, batch(1, **overrides)


NUL = "\u0000"
# Where a hostile value goes -> (method, path, query, body, expected status, field named in the 422).
HOSTILE: dict[str, tuple[str, str, dict[str, str] | None, Any, int, str | None]] = {
    "integer beyond 64 bits in a metadata value": (
        *_ingest(metadata={"campaign": BIG}),
        422,
        "data[0].metadata.campaign",
    ),
    "integer beyond 64 bits in a custom field value": (
        *_ingest(custom_fields=[{"internal_name": "n", "value": BIG}]),
        422,
        "data[0].custom_fields[0].value",
    ),
    "integer beyond 64 bits in an unknown field of the item": (*_ingest(crm_revision=BIG), 422, "data[0].crm_revision"),
    "integer beyond 64 bits in an unknown field of the call": (
        *_ingest(call__crm_revision=-BIG),
        422,
        "data[0].call.crm_revision",
    ),
    "NUL in call.id": (*_ingest(call__id=f"call{NUL}nul"), 422, "data[0].call.id"),
    "NUL in agent.id": (*_ingest(agent__id=f"agent{NUL}"), 422, "data[0].agent.id"),
    "NUL in agent.name": (*_ingest(agent__name=f"Jo{NUL}hn"), 422, "data[0].agent.name"),
    "NUL in a metadata value": (*_ingest(metadata={"campaign": f"Q1{NUL}"}), 422, "data[0].metadata.campaign"),
    "NUL in an unknown field": (*_ingest(crm_note=f"a{NUL}b"), 422, "data[0].crm_note"),
    "NUL in a configuration label": ("PUT", CONFIG, {"scope": "tenant"}, {"labels": [f"Needs{NUL}"]}, 422, "labels[0]"),
    "NUL in a call id to read": ("GET", f"{CALLS}/call%00nul", None, None, 404, None),
    "NUL in a call id to redeliver": ("POST", f"{CALLS}/call%00nul/callback/redeliver", None, None, 404, None),
    "NUL in the agent filter": ("GET", CALLS, {"agent": f"a{NUL}"}, None, 422, "agent"),
    "NUL in the subtenant filter": ("GET", CALLS, {"subtenant": f"s{NUL}"}, None, 422, "subtenant"),
    "NUL in the intent filter": ("GET", CALLS, {"intent": f"I{NUL}"}, None, 422, "intent"),
    "NUL in the cursor": ("GET", CALLS, {"cursor": f"c{NUL}"}, None, 422, "cursor"),
}


@pytest.mark.parametrize("where", list(HOSTILE))
def test_hostile_values_are_refused_in_the_spec_shape(
    fuzz_gateway: str, fuzz_partner: PartnerCreds, where: str
) -> None:
    """Found by the fuzz run above, then one request per place: values JSON allows but that cannot
    be encoded downstream (integers beyond 64 bits) or stored (PostgreSQL text cannot hold U+0000)
    are refused with the field that holds them; an id that cannot exist answers like a missing one."""
    method, path, params, body, status, field = HOSTILE[where]
    headers = {**fuzz_partner.headers(), "content-type": "application/json"}
    with httpx.Client(base_url=fuzz_gateway, timeout=30) as client:
        response = client.request(
            method, path, params=params, headers=headers, content=None if body is None else json.dumps(body)
        )
    assert response.status_code == status, f"{where}: HTTP {response.status_code} {response.text}"
    answer = response.json()
    assert answer["success"] is False and answer["message"], answer
    if field is not None:
        assert field in [e["field"] for e in answer["errors"]], answer


def test_every_operation_refuses_missing_or_wrong_credentials_in_the_spec_shape(
    fuzz_gateway: str, fuzz_partner: PartnerCreds
) -> None:
    """``ignored_auth`` probes every operation without credentials; this also checks the answer."""
    tenancy = {"x-tenant-id": "tenant1", "x-sub-tenant-id": "subtenant1"}
    wrong = {"x-api-key": fuzz_partner.api_key, "x-api-secret": "cs_" + "0" * 43}
    unknown = {"x-api-key": "ck_unknown", "x-api-secret": fuzz_partner.api_secret}
    checked = []
    with httpx.Client(base_url=fuzz_gateway, timeout=30) as client:
        for path, methods in OPENAPI["paths"].items():
            for method, operation in methods.items():
                if not operation.get("security"):  # health endpoints are public
                    continue
                label = f"{method.upper()} {path}"
                for credentials in ({}, wrong, unknown):
                    response = client.request(
                        method.upper(),
                        path.replace("{call_id}", "call123"),
                        params={"scope": "tenant"} if method == "put" else None,
                        headers={**tenancy, **credentials, "content-type": "application/json"},
                        content=json.dumps(batch(1)) if method in ("post", "put") else None,
                    )
                    assert (response.status_code, response.json()) == (403, FORBIDDEN), (
                        label,
                        sorted(credentials),
                        response.text,
                    )
                checked.append(label)
    assert len(checked) >= 3, checked
