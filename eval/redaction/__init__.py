"""PII redaction measured on a labelled set of utterances (``python -m eval.redaction``).

``dev.jsonl``, ``test.jsonl`` and ``heldout.jsonl`` hold one utterance a line: ``id``, ``text`` and ``pii``, the
exact substrings that are a card number, a phone number or an email (``kind``, ``text``);
utterances with no ``pii`` are negatives (numbers that are not personal data). See README.md.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from schemas.analysis import Redaction
from services.analyzer.redaction import Redactor, Span

HERE = Path(__file__).parent
# heldout: written by another engineer, without reading the rules, after they were final; scored,
# never tuned on (README.md).
SPLITS = ("dev", "test", "heldout")
KINDS = ("card_number", "phone_number", "email")


@dataclass(frozen=True)
class Labelled:
    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str
    pii: tuple[Labelled, ...]


def load(split: str) -> list[Utterance]:
    out = []
    for line in (HERE / f"{split}.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        text = raw["text"]
        pii = []
        for p in raw["pii"]:
            start = text.index(p["text"])
            pii.append(Labelled(p["kind"], start, start + len(p["text"])))
        out.append(Utterance(raw["id"], text, tuple(pii)))
    return out


def _covered(text: str, label: Labelled, spans: Sequence[Span]) -> bool:
    """Every non-blank character of ``label`` lies under one of ``spans``."""
    return all(any(s.start <= i < s.end for s in spans) for i in range(label.start, label.end) if not text[i].isspace())


@dataclass
class Score:
    """Counts for one split."""

    utterances: int = 0
    negatives: int = 0
    labelled: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)  # fully masked, as the right kind
    masked: Counter[str] = field(default_factory=Counter)  # fully masked, as any kind
    false_spans: int = 0  # masks over no labelled PII
    utterances_with_false: int = 0
    negatives_with_false: int = 0
    misses: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)

    def add(self, u: Utterance, spans: Sequence[Span]) -> None:
        self.utterances += 1
        self.negatives += not u.pii
        for label in u.pii:
            self.labelled[label.kind] += 1
            same = [s for s in spans if s.kind == label.kind]
            if _covered(u.text, label, same):
                self.found[label.kind] += 1
            else:
                got = [(s.kind, u.text[s.start : s.end]) for s in spans]
                self.misses.append(f"{u.id} {label.kind}: {u.text!r} -> {got}")
            if _covered(u.text, label, spans):
                self.masked[label.kind] += 1
        false = [s for s in spans if not any(s.start < p.end and p.start < s.end for p in u.pii)]
        self.false_spans += len(false)
        self.utterances_with_false += bool(false)
        self.negatives_with_false += bool(false) and not u.pii
        for s in false:
            self.false_positives.append(f"{u.id} {s.kind}: {u.text[s.start : s.end]!r} in {u.text!r}")


def score(split: str, redaction: Redaction | None = None) -> Score:
    config = redaction or Redaction(enabled=True)
    result = Score()
    for u in load(split):
        result.add(u, Redactor.from_config(config).find(u.text))
    return result
