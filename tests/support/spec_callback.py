"""The spec's callback example, and a check that a body has its shape: every field, nested the
same way, with the same JSON types (used by the notifier's unit tests and the end-to-end test)."""

from __future__ import annotations

from typing import Any

# The spec's example callback (texts shortened): names, nesting and JSON types are what count.
SPEC_EXAMPLE: dict[str, Any] = {
    "call_id": "call_12345",
    "intent": "INTERESTED",
    "intent_justification": "Customer is interested ...",
    "quality_score": 42,
    "summary": [{"chapter_name": "Introduction and Initial Discussion", "chapter_summary": "The conversation ..."}],
    "bant": {
        "needs": "\n- The customer ...",
        "objection": "- There may be ...",
        "concern_categories": "Functionality",
        "objection_handling": "\n- The salesperson ...",
    },
    "qualification": [{"label": "Needs", "answer": "The customer ..."}],
    "quality": [
        {
            "justification": "The sales call ...",
            "suggestion": "You did a great job ...",
            "parameter_name": "Setting Context",
            "inference_score": 10,
            "parameter_score": 10,
            "is_fatal": False,
        }
    ],
    "meta": {"source": "webhook", "timestamp": "2025-05-08T04:53:11.110Z"},
}

# Additive fields the notifier documents (services/notifier/callbacks.py).
ADDITIVE_TOP = {"status"}
ADDITIVE_BANT = {"budget", "authority", "timeline"}


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def assert_same_shape(spec: Any, ours: Any, path: str = "$") -> None:
    assert json_type(ours) == json_type(spec), f"{path}: {json_type(ours)} is not the spec's {json_type(spec)}"
    if isinstance(spec, dict):
        missing = set(spec) - set(ours)
        assert not missing, f"{path}: missing {missing}"
        for key in spec:
            if key != "meta":
                assert_same_shape(spec[key], ours[key], f"{path}.{key}")
    elif isinstance(spec, list):
        assert ours, f"{path}: empty"
        for i, item in enumerate(ours):
            assert_same_shape(spec[0], item, f"{path}[{i}]")
