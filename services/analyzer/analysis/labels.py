"""Qualification answers: one per configured label, in the configured order.

Known labels (matched on their stemmed words, so "Needs", "need" and "Customer needs" are the
same) are answered from the corresponding finding:

==========================================  ==============================================
label                                       answer
==========================================  ==============================================
Needs, Need, Pain points, Requirements      the customer's need statements (BANT needs)
Objection(s), Concern(s)                    the customer's objections, with categories
Objection Handling                          how the agent answered each objection
Concern Categories                          the categories, comma-joined
Budget / Authority / Decision maker         BANT budget / authority
Timeline / Timing                           BANT timeline
Next Steps                                  next steps proposed by the agent or asked for
Intent / Interest                           the intent and its justification
Competition / Competitors                   objections about competitors
==========================================  ==============================================

Any other label is answered with the (at most three) utterances sharing most words with the
label, quoted with speaker and time, or "Not discussed in the call." when none does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from . import findings as fx
from .findings import Findings
from .text import STOPWORDS, Unit, bullets, normalise, stem, stems_match

NOT_DISCUSSED = "Not discussed in the call."
NO_OBJECTION = "No objection was raised."
_LABEL_NOISE = frozenset({"customer", "customers", "prospect", "client", "lead", "s"})

Answer = Callable[[Findings, str, str], str | None]


def _competition(f: Findings, _intent: str, _justification: str) -> str | None:
    return bullets([o.hits[0].cite() for o in f.objections if "Competition" in o.categories])


_BY_NAME: Mapping[str, Answer] = {
    "need": lambda f, i, j: fx.needs_text(f),
    "pain points": lambda f, i, j: fx.needs_text(f),
    "pain": lambda f, i, j: fx.needs_text(f),
    "requirement": lambda f, i, j: fx.needs_text(f),
    "objection": lambda f, i, j: fx.objection_text(f) or NO_OBJECTION,
    "concern": lambda f, i, j: fx.objection_text(f) or NO_OBJECTION,
    "objection handling": lambda f, i, j: (
        fx.objection_handling_text(f) or "No objection was raised, so none was handled."
    ),
    "handling objections": lambda f, i, j: (
        fx.objection_handling_text(f) or "No objection was raised, so none was handled."
    ),
    "concern categories": lambda f, i, j: ", ".join(f.concern_categories) or NO_OBJECTION,
    "budget": lambda f, i, j: fx.budget_text(f),
    "authority": lambda f, i, j: fx.authority_text(f),
    "decision maker": lambda f, i, j: fx.authority_text(f),
    "timeline": lambda f, i, j: fx.timeline_text(f),
    "timing": lambda f, i, j: fx.timeline_text(f),
    "next steps": lambda f, i, j: fx.next_steps_text(f),
    "intent": lambda f, i, j: f"{i}: {j}",
    "interest": lambda f, i, j: f"{i}: {j}",
    "competition": _competition,
    "competitor": _competition,
}


def label_key(label: str) -> str:
    """The stemmed words of a label, without filler: how labels are recognised."""
    return " ".join(stem(t) for t in normalise(label).split() if t not in _LABEL_NOISE and t not in {"the", "a", "of"})


_ANSWERS: Mapping[str, Answer] = {label_key(name): found for name, found in _BY_NAME.items()}


def _related(f: Findings, label: str) -> str | None:
    wanted = [stem(t) for t in normalise(label).split() if len(t) > 2 and t not in STOPWORDS and t not in _LABEL_NOISE]
    if not wanted:
        return None

    def overlap(unit: Unit) -> int:
        return sum(1 for w in wanted if any(stems_match(w, s) for s in unit.stems))

    scored = [(overlap(u), u) for u in f.units]
    best = sorted((x for x in scored if x[0] > 0), key=lambda x: (-x[0], x[1].index))[:3]
    return bullets([u.cite() for _, u in sorted(best, key=lambda x: x[1].index)])


def answer(label: str, f: Findings, intent: str, justification: str) -> str:
    """The answer to one qualification label (see the module docstring)."""
    known = _ANSWERS.get(label_key(label))
    found = known(f, intent, justification) if known is not None else _related(f, label)
    return found or NOT_DISCUSSED
