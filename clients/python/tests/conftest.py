"""Fixtures of the client package's own tests (they need nothing but the package)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

_seq = itertools.count(1)

EXAMPLE_ITEM: dict[str, Any] = {
    "call": {
        "id": "call123",
        "recording_url": "https://example.com/recordings/call123.mp3",
        "start_time": "2023-01-01T10:00:00Z",
        "end_time": "2023-01-01T10:30:00Z",
        "contact_number": "+1234567890",
    },
    "agent": {"id": "agent123", "email": "agent@example.com", "name": "John Doe"},
    "customer": {
        "id": "customer123",
        "name": "Jane Smith",
        "email": "customer@example.com",
        "disposition_status": "interested",
    },
    "industry": "Technology",
    "callback_url": "https://partner.example.com/callback",
    "metadata": {"campaign": "Q1 Outreach", "source": "Website"},
}


def make_item(**changes: Any) -> dict[str, Any]:
    """The spec's example with a fresh id; ``call__x=value`` changes a nested field (None deletes)."""
    item = copy.deepcopy(EXAMPLE_ITEM)
    item["call"]["id"] = f"call-{next(_seq)}"
    for key, value in changes.items():
        outer, _, inner = key.partition("__")
        target = item[outer] if inner else item
        name = inner or outer
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return item


@pytest.fixture
def item() -> dict[str, Any]:
    return make_item()
