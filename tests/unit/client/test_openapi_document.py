"""clients/openapi/partner-api.json, the document other languages generate clients from: up to
date with the gateway and the client's models, a valid OpenAPI 3.1 document, and complete
enough to generate a typed client (every operation named, every answer typed, credentials and
tenancy declared); the gateway's own examples fit it."""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from tests.support.gateway import ROOT
from tests.support.spec_callback import SPEC_EXAMPLE

BUILD = ROOT / "clients" / "openapi" / "build.py"
DOCUMENT = ROOT / "clients" / "openapi" / "partner-api.json"


def load_build() -> Any:
    spec = importlib.util.spec_from_file_location("openapi_build", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build() -> Any:
    return load_build()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return loaded


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m, p): op for p, ops in doc["paths"].items() for m, op in ops.items() if p.startswith("/api/v1/partner/")}


def schema_validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def test_the_checked_in_document_is_what_the_build_makes(build: Any) -> None:
    assert DOCUMENT.read_text() == build.render(build.build()), "stale: run make openapi"


def test_it_is_a_valid_openapi_31_document(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_partner_operation_of_the_gateway_is_there_with_its_inputs_and_answers(
    build: Any, document: dict[str, Any]
) -> None:
    gateway = operations(build.gateway_document())
    published = operations(document)
    assert set(published) == set(gateway)
    for key, op in gateway.items():
        mine = published[key]
        assert {(p["name"], p["in"]) for p in mine.get("parameters", [])} == {
            (p["name"], p["in"]) for p in op.get("parameters", [])
        }, key
        assert set(mine["responses"]) == set(op["responses"]), key
        assert ("requestBody" in mine) == ("requestBody" in op), key


#: Operations on the whole partner account, which take no tenancy headers.
ACCOUNT_WIDE = {"revokeDashboardSessions"}


def test_complete_enough_to_generate_a_typed_client(document: dict[str, Any]) -> None:
    ids = []
    for (method, path), op in operations(document).items():
        ids.append(op["operationId"])
        assert re.fullmatch(r"[a-z][A-Za-z]+", op["operationId"]), op["operationId"]
        assert op["security"] == [{"ApiKey": [], "ApiSecret": []}], (method, path)  # both, together
        if op["operationId"] not in ACCOUNT_WIDE:
            headers = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "header"}
            assert headers["x-tenant-id"]["required"] is True, (method, path)
        for status, answer in op["responses"].items():
            schema = answer.get("content", {}).get("application/json", {}).get("schema")
            assert schema and ("$ref" in schema or "type" in schema), (method, path, status)
            assert "HTTPValidationError" not in json.dumps(schema), (method, path, status)
        if "requestBody" in op:
            assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert len(ids) == len(set(ids))
    for name, schema in document["components"]["schemas"].items():
        assert schema.get("type") == "object" or "enum" in schema or "anyOf" in schema, name
    callback = document["webhooks"]["callback"]["post"]
    assert callback["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Callback"}
    assert {p["name"] for p in callback["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}


def test_the_gateways_own_examples_fit_the_published_answers(build: Any, document: dict[str, Any]) -> None:
    checked = 0
    for key, op in operations(build.gateway_document()).items():
        for status, answer in op["responses"].items():
            content = answer.get("content", {}).get("application/json", {})
            examples = [content["example"]] if "example" in content else []
            examples += [e["value"] for e in content.get("examples", {}).values()]
            schema = operations(document)[key]["responses"][status]["content"]["application/json"]["schema"]
            for example in examples:
                errors = list(schema_validator(document, schema).iter_errors(example))
                assert not errors, (key, status, [e.message for e in errors])
                checked += 1
    assert checked >= 30


def test_the_callback_schema_fits_the_contracts_example(document: dict[str, Any]) -> None:
    schema = document["webhooks"]["callback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert not list(schema_validator(document, schema).iter_errors(SPEC_EXAMPLE))
