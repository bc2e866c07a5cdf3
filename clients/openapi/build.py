"""Build ``partner-api.json``: the OpenAPI 3.1 document that other languages generate clients from.

It is the gateway's own ``/openapi.json`` (its partner operations), completed where generators
need more than the gateway says today:

- a typed schema for every 2xx answer (the gateway documents five of six by example only),
  taken from the Python client's models, inside the API's ``{"success": true, "data": ...}``;
- stable, readable ``operationId``s (``getCall``, not ``get_call_api_v1_partner_calls__call_id__get``);
- both credentials required together (the gateway's document lists them as alternatives);
- the tenancy headers marked required where the API requires them;
- 422 answers in the API's real shape (``{success, message, errors}``), not FastAPI's default;
- ``limit`` as an integer;
- the callback a partner receives, as an OpenAPI 3.1 webhook with its signature headers.

``python clients/openapi/build.py`` rewrites the file; ``--check`` fails when it is stale (CI).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from callpipe_client import models  # noqa: E402

from services.gateway.app import create_app  # noqa: E402
from services.gateway.config import GatewaySettings  # noqa: E402

OUT = Path(__file__).with_name("partner-api.json")

INGEST = "/api/v1/partner/ingest/batch-call"
CALLS = "/api/v1/partner/calls"
CALL = "/api/v1/partner/calls/{call_id}"
REDELIVER = "/api/v1/partner/calls/{call_id}/callback/redeliver"
CONFIG = "/api/v1/partner/analysis-config"
DASHBOARD_TOKEN = "/api/v1/partner/dashboard/auth/token"  # noqa: S105 - a path
DASHBOARD_REVOKE = "/api/v1/partner/dashboard/sessions/revoke"
ERASURES = "/api/v1/partner/erasures"
ERASURE = "/api/v1/partner/erasures/{erasure_id}"

#: (method, path) -> (operationId, success status, model of ``data`` or None when the gateway's is kept,
#: whether x-sub-tenant-id is required)
OPERATIONS: dict[tuple[str, str], tuple[str, str, type[BaseModel] | None, bool]] = {
    ("post", INGEST): ("ingestCalls", "200", None, True),
    ("get", CALLS): ("listCalls", "200", models.CallPage, False),
    ("get", CALL): ("getCall", "200", models.CallStatus, False),
    ("post", REDELIVER): ("redeliverCallback", "202", models.Redelivery, False),
    ("get", CONFIG): ("getAnalysisConfig", "200", models.ConfigView, True),
    ("put", CONFIG): ("setAnalysisConfig", "200", models.ConfigView, True),
    ("get", DASHBOARD_TOKEN): ("getDashboardToken", "200", models.DashboardToken, True),
    ("post", DASHBOARD_REVOKE): ("revokeDashboardSessions", "200", models.DashboardSessionsRevoked, False),
    ("delete", CALL): ("eraseCall", "202", models.ErasureAccepted, False),
    ("post", ERASURES): ("eraseCustomer", "202", models.ErasureAccepted, False),
    ("get", ERASURE): ("getErasure", "200", models.Erasure, False),
}
#: Answers whose fields sit beside ``success`` (None) or under another member than ``data``.
NOT_IN_DATA: dict[type[BaseModel], str | None] = {models.ErasureAccepted: None, models.Erasure: "erasure"}
SIGNATURE_HEADERS = {
    "webhook-id": "The delivery id (msg_...): the same on every retry and redelivery; drop duplicates by it.",
    "webhook-timestamp": "Unix seconds of this attempt.",
    "webhook-signature": "Space-separated v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'> (Standard Webhooks).",
}


def gateway_document() -> dict[str, Any]:
    """The gateway's live /openapi.json (built from its routes; nothing is started)."""
    return copy.deepcopy(create_app(GatewaySettings(environment="test")).openapi())


def _model_schemas() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    wanted = [m for *_, m, _ in OPERATIONS.values() if m is not None] + [models.Callback]
    refs, top = models_json_schema(
        [(m, "serialization") for m in dict.fromkeys(wanted)], ref_template="#/components/schemas/{model}"
    )
    return {m.__name__: ref for (m, _), ref in refs.items()}, top.get("$defs", {})


def _envelope(name: str, data_ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"{name}Response",
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"type": "boolean", "const": True}, "data": data_ref},
    }


def _flat(name: str, data_ref: dict[str, Any], member: str | None, model_schema: dict[str, Any]) -> dict[str, Any]:
    success = {"success": {"type": "boolean", "const": True}}
    if member is not None:
        return {
            "title": f"{name}Response",
            "type": "object",
            "required": ["success", member],
            "properties": {**success, member: data_ref},
        }
    # The model's own fields, beside success (generators read a plain object best).
    return {
        "title": f"{name}Response",
        "type": "object",
        "required": ["success", *model_schema.get("required", [])],
        "properties": {**success, **model_schema.get("properties", {})},
    }


def build() -> dict[str, Any]:
    source = gateway_document()
    refs, defs = _model_schemas()
    doc: dict[str, Any] = {
        "openapi": source["openapi"],
        "info": {
            "title": "callpipe partner API",
            "version": source["info"]["version"],
            "description": (
                "Batch call ingestion, call status and results, callback redelivery, analysis "
                "configuration and erasure. Generated from the gateway's /openapi.json and completed with typed "
                "answers (clients/openapi/build.py)."
            ),
        },
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": source["components"]["securitySchemes"]},
        "security": [{"ApiKey": [], "ApiSecret": []}],
    }
    schemas = doc["components"]["schemas"]
    schemas.update(source["components"]["schemas"])
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)  # FastAPI's own 422 shape: the API never answers with it
    schemas.update(defs)
    for (method, path), (operation_id, ok, model, subtenant_required) in OPERATIONS.items():
        op = copy.deepcopy(source["paths"][path][method])
        op["operationId"] = operation_id
        op["security"] = [{"ApiKey": [], "ApiSecret": []}]
        for param in op.get("parameters", []):
            if param["in"] == "header" and param["name"] == "x-tenant-id":
                param["required"] = True
                param["schema"] = {"type": "string", "maxLength": 255}
            elif param["in"] == "header" and param["name"] == "x-sub-tenant-id":
                param["required"] = subtenant_required
                param["schema"] = {"type": "string", "maxLength": 255}
            elif param["in"] == "query":
                limit = {"type": "integer", "minimum": 1, "maximum": 200}
                param["schema"] = limit if param["name"] == "limit" else {"type": "string"}
        if model is not None:
            envelope = f"{model.__name__}Response"
            schemas[envelope] = (
                _flat(model.__name__, refs[model.__name__], NOT_IN_DATA[model], defs.get(model.__name__, {}))
                if model in NOT_IN_DATA
                else _envelope(model.__name__, refs[model.__name__])
            )
            content = op["responses"][ok].setdefault("content", {}).setdefault("application/json", {})
            content["schema"] = {"$ref": f"#/components/schemas/{envelope}"}
        if "422" in op["responses"]:
            answer = op["responses"]["422"]
            body = answer.setdefault("content", {}).setdefault("application/json", {})
            if body.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                answer["description"] = "Every invalid field."
                body["schema"] = {"$ref": "#/components/schemas/ValidationErrorResponse"}
        doc["paths"].setdefault(path, {})[method] = op
    doc["webhooks"] = {
        "callback": {
            "post": {
                "operationId": "receiveCallback",
                "summary": "The result (or failure) of a call, POSTed to its callback_url",
                "parameters": [
                    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
                    for name, text in SIGNATURE_HEADERS.items()
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": refs["Callback"]}},
                },
                "responses": {"200": {"description": "Any 2xx acknowledges the callback."}},
            }
        }
    }
    return doc


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if partner-api.json is stale")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{OUT} is stale: run python clients/openapi/build.py\n")
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
