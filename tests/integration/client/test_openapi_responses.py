"""What the real gateway answers fits the published document (clients/openapi/partner-api.json):
every operation, its success and its refusals, body for body."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import orjson

from tests.factories import call_item
from tests.support.gateway import INGEST, ROOT, PartnerCreds, create_partner, wait_until

DOCUMENT: dict[str, Any] = json.loads((ROOT / "clients" / "openapi" / "partner-api.json").read_text())
CALLS = "/api/v1/partner/calls"
CONFIG = "/api/v1/partner/analysis-config"


def check(response: httpx.Response, path: str, method: str) -> None:
    """The answer's body against the document's schema for its status."""
    answers = DOCUMENT["paths"][path][method]["responses"]
    assert str(response.status_code) in answers, (path, method, response.status_code)
    schema = answers[str(response.status_code)]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({**schema, "components": DOCUMENT["components"]})
    problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json())]
    assert not problems, (path, method, response.status_code, problems)


async def test_every_answer_fits_the_published_document(
    client: httpx.AsyncClient, partner: PartnerCreds, database_url: str
) -> None:
    headers = {**partner.headers(), "content-type": "application/json"}
    items = [call_item(), call_item(callback_url=None)]
    seen: set[tuple[str, str, int]] = set()

    async def call(method: str, path: str, template: str, **kwargs: Any) -> httpx.Response:
        response = await client.request(method, path, **kwargs)
        check(response, template, method.lower())
        seen.add((method, template, response.status_code))
        return response

    await call("POST", INGEST, INGEST, content=orjson.dumps({"data": items}), headers=headers)
    bad = call_item(call__id="")
    await call("POST", INGEST, INGEST, content=orjson.dumps({"data": [bad]}), headers=headers)
    await call("POST", INGEST, INGEST, content=b"{", headers=headers)
    await call("POST", INGEST, INGEST, content=b"{}", headers={**headers, "content-type": "text/plain"})
    await call("POST", INGEST, INGEST, content=b"{}", headers={**headers, "x-api-secret": "cs_wrong"})

    one = f"{CALLS}/{{call_id}}"
    await call("GET", f"{CALLS}/{items[0]['call']['id']}", one, headers=headers)  # from the ledger
    await call("GET", f"{CALLS}/nope", one, headers=headers)

    async def listed() -> bool:
        page = (await client.get(CALLS, headers=headers)).json()
        return len(page["data"]["calls"]) == 2

    assert await wait_until(listed, timeout=30)
    await call("GET", CALLS, CALLS, params={"limit": "1"}, headers=headers)
    await call("GET", CALLS, CALLS, params={"limit": "500"}, headers=headers)
    await call("GET", f"{CALLS}/{items[0]['call']['id']}", one, headers=headers)  # from the read model

    redeliver = f"{CALLS}/{{call_id}}/callback/redeliver"
    await call("POST", f"{CALLS}/{items[1]['call']['id']}/callback/redeliver", redeliver, headers=headers)
    await call("POST", f"{CALLS}/nope/callback/redeliver", redeliver, headers=headers)

    await call("GET", CONFIG, CONFIG, headers=headers)
    await call("PUT", CONFIG, CONFIG, params={"scope": "tenant"}, content=b'{"labels": ["Budget"]}', headers=headers)
    await call("PUT", CONFIG, CONFIG, params={"scope": "tenant"}, content=b'{"labels": []}', headers=headers)
    await call("GET", CONFIG, CONFIG, headers={**headers, "x-tenant-id": ""})

    limited = await create_partner(database_url, rate_limit=1)
    slow = {**limited.headers(), "content-type": "application/json"}
    await call("GET", CALLS, CALLS, headers=slow)
    await call("GET", CALLS, CALLS, headers=slow)

    assert {s for *_, s in seen} == {200, 400, 403, 404, 409, 415, 422, 429}
