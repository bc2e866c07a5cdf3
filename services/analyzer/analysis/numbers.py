"""Amounts of money in normalised tokens: "ten thousand dollars" -> "$10,000", "five hundred a
month" -> "500 a month", "$2,000" (Whisper) -> "$2,000", "one point five million" -> 1,500,000.

ASR spells numbers as words; a Whisper-class engine writes digits. Both arrive here as tokens
(see ``text.normalise_word``). A number counts as an amount when a currency word or a period
("a month", "per user per month") follows it, or, with ``bare=True``, on its own from 100 up
(for utterances that talk about a budget without naming a currency).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_LARGE = {"thousand": 1_000, "k": 1_000, "grand": 1_000, "million": 1_000_000, "m": 1_000_000, "billion": 1_000_000_000}
_CURRENCIES = {
    "dollars": "$",
    "dollar": "$",
    "bucks": "$",
    "usd": "$",
    "euros": "\u20ac",
    "euro": "\u20ac",
    "eur": "\u20ac",
    "pounds": "\u00a3",
    "pound": "\u00a3",
    "gbp": "\u00a3",
    "quid": "\u00a3",
}
_PERIOD_LEAD = frozenset({"a", "an", "per", "each", "every"})
_PERIOD_NOUN = frozenset(
    {"month", "year", "week", "day", "user", "seat", "license", "licence", "head", "person", "agent", "rep", "annum"}
)
_PERIOD_WORD = frozenset({"monthly", "annually", "yearly", "weekly"})
_BARE_MINIMUM = 100


@dataclass(frozen=True)
class Amount:
    """An amount heard in an utterance and the token span it covers."""

    value: float
    currency: str
    """A symbol ("$", "€", "£") or "" when none was said."""
    period: str
    """"per user per month", "a month", "" ..."""
    start: int
    end: int

    @property
    def text(self) -> str:
        """ "$10,000", "$50 per user per month", "500 a month"."""
        value = f"{self.value:,.0f}" if self.value == int(self.value) else f"{self.value:,.2f}"
        return f"{self.currency}{value}" + (f" {self.period}" if self.period else "")


def _is_number_word(token: str) -> bool:
    return token in _UNITS or token in _TENS or token in _LARGE or token in ("hundred",)


def parse_number(tokens: Sequence[str], i: int) -> tuple[float, int] | None:
    """The number starting at token ``i`` (digits or words) and the index after it, or None."""
    n = len(tokens)
    if i >= n:
        return None
    token = tokens[i]
    j = i
    total = 0.0
    current = 0.0
    seen = False
    digits = token.replace(".", "", 1).isdigit()
    if digits:
        current, j, seen = float(token), i + 1, True
    elif token in ("a", "an") and i + 1 < n and tokens[i + 1] in ("hundred", "thousand", "million"):
        current, j, seen = 1.0, i + 1, True  # "a thousand": the scale below multiplies it
    while j < n:
        t = tokens[j]
        if t in _UNITS:
            if digits and j == i + 1:
                break  # "50 five" is two numbers
            current += _UNITS[t]
        elif t in _TENS:
            current += _TENS[t]
        elif t == "hundred":
            current = (current or 1) * 100
        elif t in _LARGE and (seen or t not in ("k", "m", "grand")):
            total += (current or 1) * _LARGE[t]
            current = 0
        elif t == "point" and seen and j + 1 < n and tokens[j + 1] in _UNITS:
            # "one point five million": decimals spelled digit by digit.
            k, scale, frac = j + 1, 0.1, 0.0
            while k < n and tokens[k] in _UNITS and _UNITS[tokens[k]] < 10:
                frac += _UNITS[tokens[k]] * scale
                scale /= 10
                k += 1
            current += frac
            j = k
            continue
        elif t == "and" and seen and j + 1 < n and _is_number_word(tokens[j + 1]):
            pass  # "one hundred and fifty"
        else:
            break
        seen = True
        j += 1
    if not seen or j == i:
        return None
    return total + current, j


def _period(tokens: Sequence[str], j: int) -> tuple[str, int]:
    """A period phrase ("a month", "per user per month", "monthly") starting at ``j``."""
    parts: list[str] = []
    n = len(tokens)
    while j < n:
        if tokens[j] in _PERIOD_WORD:
            parts.append(tokens[j])
            j += 1
        elif tokens[j] in _PERIOD_LEAD and j + 1 < n and tokens[j + 1] in _PERIOD_NOUN:
            parts.append(f"{tokens[j]} {tokens[j + 1]}")
            j += 2
        else:
            break
    return " ".join(parts), j


def find_amounts(tokens: Sequence[str], *, bare: bool = False) -> list[Amount]:
    """Every amount of money in ``tokens`` (see the module docstring for what counts)."""
    found: list[Amount] = []
    i = 0
    n = len(tokens)
    while i < n:
        parsed = parse_number(tokens, i)
        if parsed is None:
            i += 1
            continue
        value, j = parsed
        currency = ""
        if j < n and tokens[j] in _CURRENCIES:
            currency = _CURRENCIES[tokens[j]]
            j += 1
        period, j = _period(tokens, j)
        if value > 0 and (currency or period or (bare and value >= _BARE_MINIMUM)):
            found.append(Amount(value, currency, period, i, j))
        i = max(j, i + 1)
    return found
