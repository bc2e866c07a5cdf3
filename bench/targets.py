"""Writes vegeta JSON targets to stdout, forever: 50-call batches in the spec's shape, every
call id unique (so the gateway really records each one), with the given headers."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import sys
import uuid

PLACEHOLDER = b"@@@@@@@@@@@@"  # replaced by a 12-digit request counter


def template(calls: int = 50) -> bytes:
    run = uuid.uuid4().hex[:8]
    items = []
    for i in range(calls):
        items.append(
            {
                "call": {
                    "id": f"bench-{run}-{PLACEHOLDER.decode()}-{i:02d}",
                    "recording_url": f"https://recordings.example.com/2026/11/{run}/{i}.mp3",
                    "start_time": "2026-11-01T10:00:00Z",
                    "end_time": "2026-11-01T10:07:31Z",
                    "contact_number": "+14155550123",
                },
                "agent": {"id": f"agent-{i % 7}", "email": "agent@example.com", "name": "Alex Agent"},
                "customer": {
                    "id": f"cust-{i}",
                    "name": "Casey Customer",
                    "email": "casey@example.com",
                    "disposition_status": "interested",
                },
                "industry": "Technology",
                "function": "Sales",
                "callback_url": "https://partner.example.com/callback",
                "metadata": {"campaign": "Q4 Outreach", "source": "Website", "batch": 7},
                "custom_fields": [{"internal_name": "deal_size", "value": "10000"}],
            }
        )
    return json.dumps({"data": items}).encode()


def main() -> None:
    url, headers = sys.argv[1], json.loads(sys.argv[2])
    body = template()
    out = sys.stdout.buffer
    prefix = json.dumps({"method": "POST", "url": url, "header": {k: [v] for k, v in headers.items()}})[:-1]
    for n in itertools.count():
        encoded = base64.b64encode(body.replace(PLACEHOLDER, b"%012d" % n))
        out.write(prefix.encode() + b', "body": "' + encoded + b'"}\n')


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
