"""Input files for the bulk CLI: CSV with the documented column mapping, in the spec's shape."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

COLUMNS = [
    "call_id",
    "recording_url",
    "start_time",
    "end_time",
    "contact_number",
    "agent_id",
    "agent_email",
    "agent_name",
    "customer_id",
    "customer_name",
    "disposition_status",
    "callback_url",
    "metadata.campaign",
    "custom.deal_size",
    "extra.industry",
]


def write_calls_csv(
    path: Path, count: int, *, prefix: str | None = None, invalid_every: int = 0, recording_url: str | None = None
) -> list[str]:
    """``count`` calls as a CSV file; every ``invalid_every``-th has a bad phone number. Returns the ids."""
    prefix = prefix or f"bulk-{uuid.uuid4().hex[:8]}"
    ids = []
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i in range(count):
            call_id = f"{prefix}-{i:06d}"
            ids.append(call_id)
            bad = invalid_every and i % invalid_every == invalid_every - 1
            writer.writerow(
                [
                    call_id,
                    recording_url or f"https://recordings.example.com/{prefix}/{i}.mp3",
                    "2024-05-01T10:00:00Z",
                    "2024-05-01T10:04:30Z",
                    "555-0100" if bad else f"+1415555{i % 10000:04d}",
                    f"agent-{i % 17}",
                    f"agent{i % 17}@example.com",
                    f"Agent {i % 17}",
                    f"customer-{i}",
                    "Jane Smith",
                    "interested",
                    "https://hooks.example.com/callpipe",
                    "Q2 outreach",
                    str(1000 + i),
                    "SaaS",
                ]
            )
    return ids
