"""The results table: one row per metric, one column per condition and split."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from .corpus import RUBRIC_KEYS
from .metrics import Totals

CONDITION_TITLES = {
    "text": "text",
    "stereo16k": "16 kHz stereo WAV",
    "mulaw8k": "8 kHz \u03bc-law mono WAV",
    "mp3_8k": "8 kHz MP3 16 kbit/s mono",
    "mulaw8k_male": "8 kHz \u03bc-law mono, two male voices",
}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _f1(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rubric_cell(name: str, totals: Totals) -> str:
    return _pct(totals.rubric_of(name))


ROWS: list[tuple[str, Callable[[Totals], str]]] = [
    ("intent accuracy", lambda t: _pct(t.intent())),
    ("concern categories F1 (micro)", lambda t: _f1(t.category_f1())),
    ("concern categories exactly right", lambda t: _pct(t.categories_exact())),
    ("rubric direction (6 parameters)", lambda t: _pct(t.rubric())),
    *[(f"- {name}", functools.partial(_rubric_cell, name)) for name in RUBRIC_KEYS.values()],
    ("budget found/absent right", lambda t: _pct(t.bant("budget"))),
    ("authority found/absent right", lambda t: _pct(t.bant("authority"))),
    ("timeline found/absent right", lambda t: _pct(t.bant("timeline"))),
    ("needs found/absent right", lambda t: _pct(t.bant("needs"))),
    ("qualification labels answered right", lambda t: _pct(t.qualification())),
    ("word error rate", lambda t: _pct(t.wer())),
    ("words attributed to the right speaker", lambda t: _pct(t.attribution())),
    ("analysis time per call, median", lambda t: "-" if t.analysis_ms() is None else f"{t.analysis_ms():.1f} ms"),
]


def table(results: dict[tuple[str, str], Totals], conditions: Sequence[str], splits: Sequence[str]) -> str:
    columns = [(c, s) for c in conditions for s in splits]
    head = "| metric | " + " | ".join(f"{CONDITION_TITLES[c]}, {s}" for c, s in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    lines = [head, rule]
    for name, cell in ROWS:
        lines.append(f"| {name} | " + " | ".join(cell(results[col]) for col in columns) + " |")
    return "\n".join(lines)
