"""The labelled evaluation calls (``corpus/*.toml``, described in ``eval/README.md``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from schemas.analysis import CONCERN_CATEGORIES, INTENTS
from tests.support.audio import Turn

CORPUS_DIR = Path(__file__).parent / "corpus"
SPLITS = ("dev", "test")
#: Corpus rubric keys -> the default rubric's parameter names.
RUBRIC_KEYS = {
    "context": "Setting Context",
    "discovery": "Needs Discovery",
    "pitch": "Product Pitch",
    "handling": "Objection Handling",
    "next": "Next Steps",
    "courtesy": "Professionalism",
}
_SPEAKERS = {"A": "agent", "C": "customer"}


@dataclass(frozen=True)
class EvalCall:
    id: str
    split: str
    style: str
    intent: str
    concerns: frozenset[str]
    needs: bool
    budget: bool
    authority: bool
    timeline: bool
    rubric: dict[str, str] | None
    """Parameter name -> "high" or "low"; None for a call without a conversation."""
    turns: tuple[Turn, ...]

    @property
    def qualification(self) -> dict[str, bool]:
        """Default label -> whether the call gives it an answer."""
        objection = bool(self.concerns)
        return {"Needs": self.needs, "Objection": objection, "Objection Handling": objection}


def _rubric(text: str, where: str) -> dict[str, str] | None:
    if text.strip() == "none":
        return None
    found: dict[str, str] = {}
    for part in text.split():
        key, _, value = part.partition("=")
        if key not in RUBRIC_KEYS or value not in ("high", "low"):
            raise ValueError(f"{where}: bad rubric entry {part!r}")
        found[RUBRIC_KEYS[key]] = value
    if len(found) != len(RUBRIC_KEYS):
        raise ValueError(f"{where}: the rubric must give all of {', '.join(RUBRIC_KEYS)}")
    return found


def _turns(script: str, where: str) -> tuple[Turn, ...]:
    turns = []
    for line in script.strip().splitlines():
        who, sep, text = line.partition(":")
        if not sep or who.strip() not in _SPEAKERS or not text.strip():
            raise ValueError(f"{where}: a turn must read 'A: ...' or 'C: ...', not {line!r}")
        turns.append(Turn(_SPEAKERS[who.strip()], text.strip()))  # type: ignore[arg-type]
    return tuple(turns)


def load(split: str) -> list[EvalCall]:
    """The calls of one split, validated."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    data = tomllib.loads((CORPUS_DIR / f"{split}.toml").read_text())
    calls = []
    for raw in data["call"]:
        where = f"{split}/{raw.get('id')}"
        if raw["intent"] not in INTENTS:
            raise ValueError(f"{where}: unknown intent {raw['intent']!r}")
        unknown = set(raw["concerns"]) - set(CONCERN_CATEGORIES)
        if unknown:
            raise ValueError(f"{where}: unknown concern categories {sorted(unknown)}")
        calls.append(
            EvalCall(
                id=raw["id"],
                split=split,
                style=raw["style"],
                intent=raw["intent"],
                concerns=frozenset(raw["concerns"]),
                needs=bool(raw["needs"]),
                budget=bool(raw["budget"]),
                authority=bool(raw["authority"]),
                timeline=bool(raw["timeline"]),
                rubric=_rubric(raw["rubric"], where),
                turns=_turns(raw["script"], where),
            )
        )
    ids = [c.id for c in calls]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{split}: duplicate call ids")
    return calls
