"""Scores of one analysis against its call's labels, and their totals per condition."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.analysis import CallAnalysis
from tests.support.wer import WerCount, pooled

from .corpus import EvalCall

#: An answer that says the label did not come up ("Not discussed in the call.", "No objection
#: was raised.", "None."): what the presence of a qualification answer is judged by, whichever
#: engine wrote it.
_NO_ANSWER = re.compile(
    r"^\W*(?:not (?:discussed|mentioned|raised)|no (?:objections?|concerns?|needs?)\b[^.]*(?:raised|mentioned|"
    r"discussed|handled|expressed|stated)|none\b|n/?a\b)",
    re.IGNORECASE,
)


def direction(score: float | None, maximum: float | None) -> str | None:
    """ "high" (at least half of the maximum), "low", or None when unscored."""
    if score is None or not maximum:
        return None
    return "high" if score >= 0.5 * maximum else "low"


def categories(analysis: CallAnalysis) -> frozenset[str]:
    text = analysis.bant.concern_categories or ""
    return frozenset(c.strip() for c in text.split(",") if c.strip())


def answered(text: str | None) -> bool:
    return bool(text and text.strip()) and not _NO_ANSWER.search(text or "")


@dataclass
class CallScore:
    """One call's outcome under one condition."""

    call: EvalCall
    analysis: CallAnalysis
    analysis_ms: float
    wer: WerCount | None = None
    attribution: tuple[int, int] | None = None
    """(words attributed to the right speaker, words) for recognised speech."""

    @property
    def intent_ok(self) -> bool:
        return self.analysis.intent == self.call.intent

    def rubric_pairs(self) -> list[tuple[str, str | None, str | None]]:
        """(parameter, expected direction, found direction); expected None = must be unscored."""
        found = {q.parameter_name: direction(q.inference_score, q.parameter_score) for q in self.analysis.quality}
        names = list(self.call.rubric or found)
        expected = self.call.rubric or {}
        return [(n, expected.get(n), found.get(n)) for n in names]

    def bant_found(self) -> dict[str, tuple[bool, bool]]:
        """field -> (expected, found)."""
        b = self.analysis.bant
        return {
            "budget": (self.call.budget, bool(b.budget)),
            "authority": (self.call.authority, bool(b.authority)),
            "timeline": (self.call.timeline, bool(b.timeline)),
            "needs": (self.call.needs, bool(b.needs)),
        }

    def qualification_pairs(self) -> list[tuple[str, bool, bool]]:
        answers = {q.label: q.answer for q in self.analysis.qualification}
        return [(label, want, answered(answers.get(label))) for label, want in self.call.qualification.items()]

    def errors(self) -> list[str]:
        """What this call got wrong, for reading dev results."""
        out = []
        if not self.intent_ok:
            out.append(f"intent {self.analysis.intent} != {self.call.intent}")
        got = categories(self.analysis)
        if got != self.call.concerns:
            out.append(f"categories {sorted(got)} != {sorted(self.call.concerns)}")
        for name, want, found in self.rubric_pairs():
            if want != found:
                out.append(f"{name} {found} != {want}")
        for name, (want, found) in self.bant_found().items():
            if want != found:
                out.append(f"{name} found={found} expected={want}")
        for label, want, found in self.qualification_pairs():
            if want != found:
                out.append(f"label {label!r} answered={found} expected={want}")
        return out


@dataclass
class Totals:
    """Every metric of one condition over a set of calls."""

    scores: list[CallScore] = field(default_factory=list)

    def _ratio(self, pairs: Iterable[bool]) -> float | None:
        values = list(pairs)
        return sum(values) / len(values) if values else None

    def intent(self) -> float | None:
        return self._ratio(s.intent_ok for s in self.scores)

    def category_f1(self) -> float | None:
        tp = fp = fn = 0
        for s in self.scores:
            got = categories(s.analysis)
            tp += len(got & s.call.concerns)
            fp += len(got - s.call.concerns)
            fn += len(s.call.concerns - got)
        if tp + fp + fn == 0:
            return None
        return 2 * tp / (2 * tp + fp + fn)

    def categories_exact(self) -> float | None:
        return self._ratio(categories(s.analysis) == s.call.concerns for s in self.scores)

    def rubric(self) -> float | None:
        return self._ratio(want == found for s in self.scores for _, want, found in s.rubric_pairs())

    def rubric_of(self, name: str) -> float | None:
        return self._ratio(want == found for s in self.scores for n, want, found in s.rubric_pairs() if n == name)

    def bant(self, name: str) -> float | None:
        return self._ratio(
            want == found for s in self.scores for n, (want, found) in s.bant_found().items() if n == name
        )

    def recall(self, name: str) -> float | None:
        return self._ratio(
            found for s in self.scores for n, (want, found) in s.bant_found().items() if n == name and want
        )

    def qualification(self) -> float | None:
        return self._ratio(want == found for s in self.scores for _, want, found in s.qualification_pairs())

    def wer(self) -> float | None:
        counts = [s.wer for s in self.scores if s.wer is not None]
        return pooled(counts).wer if counts else None

    def attribution(self) -> float | None:
        pairs = [s.attribution for s in self.scores if s.attribution is not None]
        words = sum(t for _, t in pairs)
        return sum(r for r, _ in pairs) / words if words else None

    def analysis_ms(self) -> float | None:
        times = [s.analysis_ms for s in self.scores]
        return statistics.median(times) if times else None
