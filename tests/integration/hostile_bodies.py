"""Random request bodies for the property-style hostile-input test: every shape the contract
allows (and some it does not), with unknown fields of every JSON kind nested up to the body's
limit, strings from every Unicode plane, duplicate ids, nulls where nulls are allowed."""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable, Iterator
from typing import Any

from services.gateway.models import MAX_JSON_DEPTH

_ALPHABETS = [
    string.ascii_letters + string.digits + "-_.:",
    "äöüßéèçñøåæœ",
    "你好世界电话销售",
    "مرحبا بالعالم",
    "😀📞💸🚀",
    "\t\"'\\<>&/",
    "\u200b\u202e\ufeff\u00a0",
]


def text(rng: random.Random, max_len: int = 40) -> str:
    alphabet = "".join(rng.sample(_ALPHABETS, rng.randint(1, 3)))
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, max_len)))


def json_value(rng: random.Random, depth_left: int) -> Any:
    kinds = ["str", "int", "float", "bool", "null"] + (["list", "dict"] * 2 if depth_left > 0 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return text(rng, 60)
    if kind == "int":
        return rng.choice([0, -1, 2**63 - 1, -(2**63), rng.randint(-(10**12), 10**12)])
    if kind == "float":
        return rng.choice([0.5, -1e-300, 1.7976931348623157e308, rng.uniform(-1e6, 1e6)])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [json_value(rng, depth_left - 1) for _ in range(rng.randint(0, 3))]
    return {text(rng, 12): json_value(rng, depth_left - 1) for _ in range(rng.randint(0, 3))}


def deep(rng: random.Random, levels: int) -> Any:
    value: Any = json_value(rng, 0)
    for _ in range(levels):
        value = [value] if rng.random() < 0.5 else {text(rng, 5): value}
    return value


def item(
    rng: random.Random, call_id: str, recording_urls: list[str], callback_url: Callable[[str], str]
) -> dict[str, Any]:
    start = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 22):02d}:00:00Z"
    end = start.replace(":00:00Z", ":30:00.5Z")
    entry: dict[str, Any] = {
        "call": {
            "id": call_id,
            "recording_url": rng.choice(recording_urls),
            "start_time": start,
            "end_time": end,
            "contact_number": "+" + str(rng.randint(10, 10**14)),
        },
        "agent": {"id": text(rng, 20)},
        "customer": {"id": text(rng, 20)},
        "callback_url": callback_url(call_id),
    }
    if rng.random() < 0.6:
        entry["agent"].update(name=text(rng), email=rng.choice([None, "a.b+c@example.co.uk"]))
        entry["customer"].update(name=rng.choice([None, text(rng)]), disposition_status=text(rng, 10))
    if rng.random() < 0.6:
        entry["metadata"] = {text(rng, 10): rng.choice([text(rng), rng.randint(-5, 5), 2.5]) for _ in range(5)}
    if rng.random() < 0.5:
        entry["custom_fields"] = [
            {"internal_name": text(rng, 12), "value": rng.choice([None, True, 3, text(rng)])}
            for _ in range(rng.randint(0, 10))
        ]
    for _ in range(rng.randint(0, 4)):  # unknown fields, at the item level and inside the objects
        where = rng.choice([entry, entry["call"], entry["agent"], entry["customer"]])
        depth = 3 if where is entry else 4
        where[f"x_{text(rng, 8)}"] = deep(rng, rng.randint(0, MAX_JSON_DEPTH - depth - 1))
    return entry


def random_batches(
    *, seed: int, count: int, recording_urls: list[str], callback_url: Callable[[str], str]
) -> Iterator[dict[str, Any]]:
    """``count`` bodies of 1 to 5 calls; about one in eight breaks a rule on purpose (an unknown
    field one level too deep), so refusals are exercised alongside."""
    rng = random.Random(seed)
    for _ in range(count):
        ids = [text(rng, 80) for _ in range(rng.randint(1, 5))]
        if len(ids) > 1 and rng.random() < 0.2:
            ids.append(ids[0])  # a repeat inside the batch: answered duplicate
        body = {"data": [item(rng, call_id, recording_urls, callback_url) for call_id in ids]}
        if rng.random() < 0.125:
            body["data"][0]["too_deep"] = deep(rng, MAX_JSON_DEPTH - 2)
        yield body


def callback_name(call_id: str) -> str:
    """The receiver path name of a random call's callback (ids may hold any character)."""
    return "random-" + hashlib.sha256(call_id.encode()).hexdigest()[:24]
