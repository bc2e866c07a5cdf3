"""Write the JSON Schema of every topic's events to ``schemas/json/`` (checked in).

Run ``python -m schemas.generate`` after changing ``schemas.events``; a test fails while the
checked-in files differ from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas.events import TOPICS

OUT = Path(__file__).parent / "json"


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema (validation mode: what a reader accepts)."""
    result = {}
    for model, topic in TOPICS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://callpipe.dev/schemas/{topic}.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        result[f"{topic}.json"] = schema
    return result


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, schema in schemas().items():
        (OUT / name).write_text(render(schema), encoding="utf-8")
        sys.stderr.write(f"wrote schemas/json/{name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
