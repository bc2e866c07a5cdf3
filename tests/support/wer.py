"""Word error rate, with the text normalisation speech-recognition evaluations use.

Both sides are normalised the same way before words are compared: lower case; contractions
expanded as in Whisper's English normaliser ("we're" -> "we are", "it's" -> "it is", "don't" ->
"do not"); a few spelling variants unified ("ok" -> "okay", "alright" -> "all right"); numbers
written with digits spelled out as festival says them ("10,000" -> "ten thousand", "$50" ->
"fifty dollars", "12%" -> "twelve percent"); punctuation dropped (a hyphen separates words).

WER = (substitutions + deletions + insertions) / reference words, by Levenshtein distance on
words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

_ONES = (
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"),
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((1_000_000_000, "billion"), (1_000_000, "million"), (1_000, "thousand"))

_CONTRACTIONS = (
    (r"\bcan't\b", "can not"),
    (r"\bwon't\b", "will not"),
    (r"\blet's\b", "let us"),
    (r"\bcannot\b", "can not"),
    (r"n't\b", " not"),
    (r"'re\b", " are"),
    (r"'s\b", " is"),
    (r"'d\b", " would"),
    (r"'ll\b", " will"),
    (r"'ve\b", " have"),
    (r"'m\b", " am"),
)
_SPELLINGS = {"ok": "okay", "alright": "all right"}


def number_words(n: int) -> str:
    """``n`` (0 <= n < 10**12) in words, American style: 2500 -> "two thousand five hundred"."""
    if n < 0 or n >= 10**12:
        raise ValueError("out of range")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return f"{number_words(head)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def _spell_numbers(text: str) -> str:
    def money(m: re.Match[str]) -> str:
        return f"{number_words(int(m.group(1).replace(',', '')))} dollars"

    def percent(m: re.Match[str]) -> str:
        return f"{number_words(int(m.group(1).replace(',', '')))} percent"

    def plain(m: re.Match[str]) -> str:
        return f" {number_words(int(m.group(0).replace(',', '')))} "

    text = re.sub(r"\$(\d[\d,]*)", money, text)
    text = re.sub(r"(\d[\d,]*)\s*%", percent, text)
    return re.sub(r"\d[\d,]*", plain, text)


def normalize(text: str) -> list[str]:
    """The words of ``text`` after normalisation (see the module docstring)."""
    text = text.lower().replace("\u2019", "'")
    text = _spell_numbers(text)
    for pattern, replacement in _CONTRACTIONS:
        text = re.sub(pattern, replacement, text)
    text = re.sub(r"[^a-z' ]+", " ", text).replace("'", "")
    return [w for word in text.split() for w in _SPELLINGS.get(word, word).split()]


def edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between two word sequences."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class WerCount:
    """Errors and reference words; add counts to pool several transcripts."""

    errors: int
    words: int

    @property
    def wer(self) -> float:
        """The word error rate (0 for an empty reference with an empty hypothesis)."""
        if self.words == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.words

    def __add__(self, other: WerCount) -> WerCount:
        return WerCount(self.errors + other.errors, self.words + other.words)


def count(reference: str, hypothesis: str) -> WerCount:
    """Word errors of ``hypothesis`` against ``reference``."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    return WerCount(edit_distance(ref, hyp), len(ref))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference``."""
    return count(reference, hypothesis).wer


def pooled(counts: Iterable[WerCount]) -> WerCount:
    """Several counts as one (errors and words summed: longer transcripts weigh more)."""
    total = WerCount(0, 0)
    for c in counts:
        total = total + c
    return total


class _Timed(Protocol):
    @property
    def speaker(self) -> str: ...
    @property
    def start_s(self) -> float: ...
    @property
    def end_s(self) -> float: ...


class _Said(Protocol):
    @property
    def speaker(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def text(self) -> str: ...


def word_attribution(segments: Sequence[_Said], turns: Sequence[_Timed]) -> tuple[int, int]:
    """(recognised words attributed to the speaker who said them, recognised words).

    Each word of a segment is placed evenly in the segment's time span and belongs to the
    scripted turn under it, or the nearest one. A word labelled ``unknown`` counts as wrong.
    """

    def distance(turn: _Timed, t: float) -> float:
        return 0.0 if turn.start_s <= t <= turn.end_s else min(abs(turn.start_s - t), abs(turn.end_s - t))

    right = total = 0
    for seg in segments:
        words = seg.text.split()
        for i in range(len(words)):
            t = seg.start + (seg.end - seg.start) * (i + 0.5) / len(words)
            truth = min(turns, key=lambda turn: distance(turn, t))
            total += 1
            right += seg.speaker == truth.speaker
    return right, total
