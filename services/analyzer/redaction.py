"""PII redaction: card numbers, phone numbers, emails and a tenant's own patterns masked in
transcripts and analysis results before anything is stored or sent (issue 15).

Pure and synchronous: no I/O, no logging of text or matches (callers count spans by kind).
A ``Redactor`` is built per call from the tenant's ``Redaction`` configuration; it masks a text
(``redact``), a transcript whose consecutive segments of one speaker are read as one text
(``redact_segments``: a card number read out over three pauses is still one card number), and
every string of a result model (``redact_model``).

Masks: ``[CARD]``, ``[PHONE]``, ``[EMAIL]``, ``[NAME]`` for a tenant pattern called ``name``.
Spans of different kinds that overlap are merged into one mask named after the first kind in
``PRIORITY`` (masking the union never leaves a piece of either uncovered).

The text may be written (a Whisper-class engine: digits, punctuation, "j.smith@acme.com") or as
an offline ASR writes it (lower case, no punctuation, numbers as words). The rules, in full:

**Digit runs.** Tokens that say digits are read as one run: written digit groups ("4111",
"123-4567", "(555)", "+44", "555.123.4567"), spoken digits ("zero", "oh", "o", "nought",
"one".."nine"), "double"/"triple" before a digit, spoken pairs ("forty one" is 41, "twelve" is
12, "twenty" alone is 20), and "hundred" after a single digit ("one eight hundred" is 1800).
Between two single spoken digits, a recogniser's homophones count as digits ("for", "to", "too",
"won"). Inside a run, hesitations ("uh", "um", "er" ...), punctuation, "dash"/"hyphen" and, between
two single spoken digits, "and" are skipped; anything else ends the run. A leading "+" or
"plus" belongs to the run. Written numbers that are something else end a run and are never
part of one: decimals ("3.5"), thousands ("1,200"), times ("3:30"), dates ("12/03/2024",
"2024-03-12", "12.03.2024").

**Card number.** A run of 13 to 19 digits that passes the Luhn check, or a Luhn-valid 15 or 16
digit prefix of a run that has 3 or 4 digits more (a card said with its security code or expiry
date; the rest is left as it is). Context does not matter: a card number is the costliest leak, so a Luhn-valid
"identifier" is masked too.

**Phone number.** Any other run of 7 to 15 digits (E.164 allows at most 15), unless
- it is an amount or a measure: a currency sign before it, or a currency or unit word after it
  ("dollars", "percent", "seats", "a month" ...);
- the nearest cue word in the six tokens before it names an identifier rather than a phone
  ("order", "invoice", "ticket", "reference", "tracking", "zip" ...; "number" is no cue).
Runs of 16 to 19 digits failing Luhn are neither (order ids, tracking numbers) and are kept; a
13-15 digit run failing Luhn is masked as a phone number (a long international number, or a
card misheard by a digit: masked either way). Years, dates, times, prices, quantities and
percentages spoken as words never reach 7 digits by these rules ("twenty twenty four" is 2024).

**Email.** Written addresses (``local@domain.tld``), and spoken ones: "at" (or "@") followed by
a domain of at least two labels joined by "dot"/"." whose last label is a known top-level
domain ("acme dot co dot uk"), preceded by a local part: words and numbers joined by "dot",
"underscore", "dash", "hyphen", "plus" or their signs, plus up to three bare words before them
("j smith", "sarah jones eighty seven") and any spelled letters ("j o h n"); function words
("is", "me", "to", "email" ...) end the local part. A domain with no local part ("visit us at
acme dot com") is a website, not an email, and is kept.

**Tenant patterns** run case-insensitively with the ``regex`` package and a time limit per
text (``PATTERN_TIMEOUT_S``): a pattern that runs out of time is skipped for that text and
counted in ``timeouts``; after ``MAX_PATTERN_TIMEOUTS`` of them in one call it is skipped for
the rest of the call, so a pathological pattern costs a call a bounded delay, never a crash.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_origin

import regex
from pydantic import BaseModel

from schemas.analysis import Redaction, TranscriptSegment

#: Built-in kinds; tenant patterns are counted under ``"pattern"`` (their names are tenant data).
Kind = str
CARD = "card_number"
PHONE = "phone_number"
EMAIL = "email"
PATTERN = "pattern"
PRIORITY = (EMAIL, CARD, PATTERN, PHONE)
MASKS = {CARD: "[CARD]", PHONE: "[PHONE]", EMAIL: "[EMAIL]"}

PATTERN_TIMEOUT_S = 0.05
MAX_PATTERN_TIMEOUTS = 3

#: A speaker's segments closer than this are read as one text (pauses while reading out a number).
JOIN_GAP_S = 4.0

CARD_LENGTHS = range(13, 20)
PHONE_LENGTHS = range(7, 16)


@dataclass(frozen=True)
class Span:
    """A masked stretch of text: its kind (``card_number``, ``phone_number``, ``email`` or
    ``pattern``), the mask written in its place and its character offsets in the input."""

    kind: Kind
    start: int
    end: int
    mask: str


@dataclass(frozen=True)
class SegmentSpan:
    """A masked piece of one transcript segment: the segment's index and the piece's character
    offsets in the segment's original (unmasked) text."""

    index: int
    start: int
    end: int


@dataclass(frozen=True)
class Redacted:
    """A masked text and what was masked in it (offsets refer to the input text)."""

    text: str
    spans: tuple[Span, ...]


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------

_TOKEN = regex.compile(
    r"""
      (?P<num>\+?\(?\d(?:[\d().\-/:,]*\d)?\)?)   # digits, with the separators they are written with
    | (?P<word>[^\W\d_]+(?:['\u2019][^\W\d_]+)?)  # a word (its apostrophe kept: "it's")
    | (?P<sym>\S)                                  # any other character, alone
    """,
    regex.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    text: str  # lower-cased
    start: int
    end: int
    kind: Literal["num", "word", "sym"]


def _tokens(text: str) -> list[_Token]:
    out = []
    for m in _TOKEN.finditer(text):
        kind: Literal["num", "word", "sym"] = "num" if m.group("num") else "word" if m.group("word") else "sym"
        out.append(_Token(m.group().lower(), m.start(), m.end(), kind))
    return out


# ---------------------------------------------------------------------------------------------
# Digit runs: card and phone numbers
# ---------------------------------------------------------------------------------------------

_DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "nought": "0",
    "naught": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_TEENS = {
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "thirteen": "13",
    "fourteen": "14",
    "fifteen": "15",
    "sixteen": "16",
    "seventeen": "17",
    "eighteen": "18",
    "nineteen": "19",
}
_TENS = {
    "twenty": "2",
    "thirty": "3",
    "forty": "4",
    "fourty": "4",
    "fifty": "5",
    "sixty": "6",
    "seventy": "7",
    "eighty": "8",
    "ninety": "9",
}
_HOMOPHONES = {"for": "4", "fore": "4", "to": "2", "too": "2", "won": "1"}
_REPEAT = {"double": 2, "triple": 3, "treble": 3, "quadruple": 4}
_HESITATIONS = frozenset({"uh", "um", "uhm", "umm", "uhh", "er", "erm", "ah", "hmm", "mm", "dash", "hyphen"})
_RUN_PUNCT = frozenset({",", ".", "-", "(", ")", ";", "/"})
_PLUS = frozenset({"+", "plus"})

# Written numbers that are something else than digits to read out.
_NOT_DIGITS = regex.compile(
    r"""^(?:
        \d+\.\d+                              # a decimal: 3.5, 1.25
      | \d{1,3}(?:,\d{3})+(?:\.\d+)?          # thousands: 1,200
      | .*[:]
      | \d{1,2}/\d{1,2}(?:/\d{2,4})?          # 12/03, 12/03/2024
      | \d{4}[-/.]\d{1,2}[-/.]\d{1,2}         # 2024-03-12
      | \d{1,2}[-.]\d{1,2}[-.]\d{2,4}         # 12-03-2024, 12.03.2024
      | .*/.*
      | .*,.*
    )$""",
    regex.VERBOSE,
)

_CURRENCY_SIGNS = frozenset({"$", "\u20ac", "\u00a3", "\u00a5", "#"})
_UNIT_WORDS = frozenset(
    {
        "dollars",
        "dollar",
        "bucks",
        "usd",
        "euros",
        "euro",
        "eur",
        "pounds",
        "pound",
        "gbp",
        "quid",
        "cents",
        "pence",
        "percent",
        "per",
        "%",
        "seats",
        "seat",
        "users",
        "user",
        "licenses",
        "licences",
        "licence",
        "license",
        "units",
        "items",
        "calls",
        "minutes",
        "hours",
        "days",
        "weeks",
        "months",
        "years",
        "people",
        "employees",
        "agents",
        "customers",
        "miles",
        "kilometers",
        "km",
        "kg",
        "grand",
        "thousand",
        "million",
        "billion",
        "k",
        "times",
    }
)
_PERIODS = frozenset({"month", "year", "week", "day", "hour", "user", "seat", "head", "piece"})
_IDENTIFIER_CUES = frozenset(
    {
        "order",
        "orders",
        "invoice",
        "ticket",
        "case",
        "reference",
        "ref",
        "tracking",
        "confirmation",
        "booking",
        "reservation",
        "po",
        "sku",
        "serial",
        "part",
        "model",
        "zip",
        "postcode",
        "postal",
        "policy",
        "claim",
        "id",
        "transaction",
        "receipt",
        "version",
        "build",
    }
)
_PHONE_CUES = frozenset(
    {
        "phone",
        "call",
        "calling",
        "mobile",
        "cell",
        "landline",
        "reach",
        "dial",
        "fax",
        "text",
        "whatsapp",
        "extension",
        "ext",
        "telephone",
        "contact",
        "card",
        "visa",
        "mastercard",
        "amex",
        "credit",
        "debit",
    }
)
_CUE_WINDOW = 6


@dataclass
class _Unit:
    """One token (or a "double four" pair) of a digit run and the digits it says."""

    digits: str
    start: int  # character offsets
    end: int
    token_index: int  # index of its first token
    single_spoken: bool  # one spoken digit (lets "and" join)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _written_digits(token: _Token) -> str | None:
    text = token.text.lstrip("+")
    if _NOT_DIGITS.match(text):
        return None
    return "".join(ch for ch in text if ch.isdigit())


def _read_unit(tokens: Sequence[_Token], i: int) -> tuple[_Unit, int] | None:
    """The digits said from token ``i`` and the index after them, or None if it says none."""
    t = tokens[i]
    if t.kind == "num":
        digits = _written_digits(t)
        if not digits:
            return None
        return _Unit(digits, t.start, t.end, i, False), i + 1
    if t.kind != "word":
        return None
    w = t.text
    if w in _DIGIT_WORDS:
        nxt = i + 1
        digits = _DIGIT_WORDS[w]
        # "one eight hundred": a hundred after a single digit is two zeros (phone prefixes).
        if nxt < len(tokens) and tokens[nxt].text == "hundred" and digits != "0":
            return _Unit(digits + "00", t.start, tokens[nxt].end, i, False), nxt + 1
        return _Unit(digits, t.start, t.end, i, True), nxt
    if w in _TEENS:
        return _Unit(_TEENS[w], t.start, t.end, i, False), i + 1
    if w in _TENS:
        nxt = i + 1
        if nxt < len(tokens) and tokens[nxt].text in _DIGIT_WORDS and _DIGIT_WORDS[tokens[nxt].text] != "0":
            return _Unit(_TENS[w] + _DIGIT_WORDS[tokens[nxt].text], t.start, tokens[nxt].end, i, False), nxt + 1
        return _Unit(_TENS[w] + "0", t.start, t.end, i, False), nxt
    if w in _REPEAT and i + 1 < len(tokens):
        inner = _read_unit(tokens, i + 1)
        if inner is not None and len(inner[0].digits) == 1:
            unit, after = inner
            return _Unit(unit.digits * _REPEAT[w], t.start, unit.end, i, False), after
    return None


def _homophone(tokens: Sequence[_Token], i: int, previous: _Unit) -> tuple[_Unit, int] | None:
    """A recogniser's "for", "to", "too" or "won" between two single spoken digits is the digit
    ("five nine for three" is 5943); anywhere else it is the word ("two to three weeks")."""
    t = tokens[i]
    if t.text not in _HOMOPHONES or not previous.single_spoken or i + 1 >= len(tokens):
        return None
    if tokens[i + 1].text not in _DIGIT_WORDS:
        return None
    return _Unit(_HOMOPHONES[t.text], t.start, t.end, i, True), i + 1


def _is_filler(tokens: Sequence[_Token], i: int, previous: _Unit) -> bool:
    t = tokens[i]
    if t.text in _HESITATIONS or (t.kind == "sym" and t.text in _RUN_PUNCT):
        return True
    # "four one one and one": "and" joins single spoken digits only, never "2019 and 2023".
    if t.text == "and" and previous.single_spoken and i + 1 < len(tokens):
        return tokens[i + 1].text in _DIGIT_WORDS
    return False


def _runs(tokens: Sequence[_Token], blocked: Sequence[tuple[int, int]]) -> Iterable[tuple[list[_Unit], int, int]]:
    """Maximal digit runs: their units, the index of their first token (a "+" included) and the
    index of the token after them."""
    in_blocked = [any(s < t.end and t.start < e for s, e in blocked) for t in tokens]
    i, n = 0, len(tokens)
    while i < n:
        if in_blocked[i]:
            i += 1
            continue
        first = i
        if tokens[i].text in _PLUS and i + 1 < n and not in_blocked[i + 1]:
            i += 1
        read = _read_unit(tokens, i)
        if read is None:
            i = first + 1
            continue
        units = [read[0]]
        i = read[1]
        while i < n:
            j = i
            while j < n and not in_blocked[j] and _is_filler(tokens, j, units[-1]):
                j += 1
            if j >= n or in_blocked[j]:
                break
            nxt = _read_unit(tokens, j)
            if nxt is None:
                nxt = _homophone(tokens, j, units[-1])
            if nxt is None:
                break
            units.append(nxt[0])
            i = nxt[1]
        yield units, first, i


def _is_measure(tokens: Sequence[_Token], first: int, after: int) -> bool:
    """An amount or a measure: a currency sign before the run, a unit word after it."""
    before = tokens[first - 1].text if first > 0 else ""
    if before in _CURRENCY_SIGNS or tokens[first].text[:1] in _CURRENCY_SIGNS:
        return True
    if after >= len(tokens):
        return False
    if tokens[after].text in _UNIT_WORDS:
        return True
    # "... a month", "an hour"
    return (
        tokens[after].text in ("a", "an", "each", "every")
        and after + 1 < len(tokens)
        and tokens[after + 1].text in _PERIODS
    )


def _identifier_context(tokens: Sequence[_Token], first: int) -> bool:
    """The nearest cue word before the run names an identifier (order, ticket, zip ...)."""
    for k in range(first - 1, max(-1, first - 1 - _CUE_WINDOW), -1):
        w = tokens[k].text
        if w in _IDENTIFIER_CUES:
            return True
        if w in _PHONE_CUES:
            return False
    return False


def _card_within(units: Sequence[_Unit]) -> tuple[int, int] | None:
    """Unit index range [a, b) of a Luhn-valid card number: the whole run, else a 15 or 16 digit
    prefix followed by 3 or 4 digits more (the security code or the expiry date said with it)."""
    digits = "".join(u.digits for u in units)
    if len(digits) in CARD_LENGTHS and _luhn(digits):
        return 0, len(units)
    if len(digits) <= 16:
        return None
    for b in range(len(units) - 1, 0, -1):
        prefix = "".join(u.digits for u in units[:b])
        if len(prefix) in (15, 16) and len(digits) - len(prefix) in (3, 4) and _luhn(prefix):
            return 0, b
    return None


def _number_spans(tokens: Sequence[_Token], blocked: Sequence[tuple[int, int]], kinds: set[str]) -> list[Span]:
    spans: list[Span] = []
    for units, first, after in _runs(tokens, blocked):
        total = sum(len(u.digits) for u in units)
        if total < PHONE_LENGTHS.start:
            continue
        start = tokens[first].start
        if CARD in kinds:
            card = _card_within(units)
            if card is not None:
                a, b = card
                spans.append(Span(CARD, start if a == 0 else units[a].start, units[b - 1].end, MASKS[CARD]))
                continue
        if PHONE not in kinds or total not in PHONE_LENGTHS:
            continue
        if _is_measure(tokens, first, after) or _identifier_context(tokens, first):
            continue
        spans.append(Span(PHONE, start, units[-1].end, MASKS[PHONE]))
    return spans


# ---------------------------------------------------------------------------------------------
# Emails
# ---------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WRITTEN_EMAIL = regex.compile(
    r"(?<![\w.+-])[a-z0-9][a-z0-9._%+-]*@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
    r"\.[a-z]{2,24}\b",
    regex.IGNORECASE,
)
_TLDS = _words(
    "com net org edu gov mil int io co uk us ca au nz de fr es it nl be ch at se no dk fi ie pt pl cz in jp cn"
    " br mx za sg hk info biz me ai app dev tech online site xyz eu tv ly gg email mail"
)
_DOT = frozenset({"dot", ".", "period", "point"})
_DASH = frozenset({"dash", "hyphen", "-"})
_LOCAL_JOIN = frozenset({"dot", ".", "period", "underscore", "_", "dash", "hyphen", "-", "plus", "+"})
_LOCAL_STOP = _words(
    """a i is it it's its me my mine email mail address addresses to at the and or but so is was are
    am be been being this that that's thats there here you your yours we our us they their he she his her
    him them send sent sending write wrote reach contact use using try is it's email's mail mails
    emailing emailed work works working worked live lives based am located find found look
    looking visit visiting check see go online available listed over up on in of for from with
    by as just also then well yes yeah yep ok okay sure right um uh er erm ah oh hmm like
    called named name's name please thanks thank can could would should will shall may might
    do does did have has had get got is copy cc forward forwarded reply directly straight
    either any other another new old our office dear hi hello"""
)
_MAX_BARE_LOCAL = 3


def _domain_end(tokens: Sequence[_Token], i: int) -> int | None:
    """Index after a domain starting at token ``i`` ("acme dot co dot uk"), or None."""
    n = len(tokens)

    def label(j: int) -> int | None:
        if j >= n or tokens[j].kind == "sym" or not tokens[j].text.isalnum():
            return None
        j += 1
        while j + 1 < n and tokens[j].text in _DASH and tokens[j + 1].kind != "sym" and tokens[j + 1].text.isalnum():
            j += 2
        return j

    j = label(i)
    if j is None:
        return None
    labels = 1
    last = j - 1
    while j + 1 < n and tokens[j].text in _DOT:
        k = label(j + 1)
        if k is None:
            break
        labels += 1
        last = k - 1
        j = k
    if labels < 2:
        return None
    # The domain may run on into words after it ("acme dot com dot thanks"): end it at the last
    # label that is a top-level domain.
    while last > i and tokens[last].text not in _TLDS:
        last -= 1
    if last == i or tokens[last].text not in _TLDS or tokens[last - 1].text not in _DOT:
        return None
    return last + 1


def _local_start(tokens: Sequence[_Token], at: int, floor: int) -> int | None:
    """Index of the first token of the local part ending just before token ``at``."""
    j = at - 1

    def local_word(k: int) -> bool:
        return k >= floor and tokens[k].kind != "sym" and tokens[k].text.isalnum()

    if not local_word(j) or tokens[j].text in _LOCAL_STOP:
        return None
    start = j
    bare = 0
    while True:
        k = start - 1
        if k - 1 >= floor and tokens[k].text in _LOCAL_JOIN and local_word(k - 1):
            start = k - 1
            continue
        if not local_word(k) or tokens[k].text in _LOCAL_STOP:
            break
        if len(tokens[k].text) == 1 and tokens[k].kind == "word":  # a spelled letter
            start = k
            continue
        if bare >= _MAX_BARE_LOCAL - 1:
            break
        bare += 1
        start = k
    return start


def _email_spans(text: str, tokens: Sequence[_Token]) -> list[Span]:
    spans = [Span(EMAIL, m.start(), m.end(), MASKS[EMAIL]) for m in _WRITTEN_EMAIL.finditer(text)]
    written = [(s.start, s.end) for s in spans]
    floor = 0
    for i, t in enumerate(tokens):
        if t.text not in ("at", "@") or i < floor:
            continue
        if any(s <= t.start < e for s, e in written):
            continue
        end = _domain_end(tokens, i + 1)
        if end is None:
            continue
        start = _local_start(tokens, i, floor)
        if start is None:
            continue
        spans.append(Span(EMAIL, tokens[start].start, tokens[end - 1].end, MASKS[EMAIL]))
        floor = end
    return spans


# ---------------------------------------------------------------------------------------------
# The redactor
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern, regex.IGNORECASE)


def _merge(spans: Iterable[Span]) -> list[Span]:
    """Overlapping spans as one, named after the first of their kinds in ``PRIORITY``."""
    rank = {k: i for i, k in enumerate(PRIORITY)}
    merged: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and s.start < merged[-1].end:
            last = merged[-1]
            keep = last if rank[last.kind] <= rank[s.kind] else s
            merged[-1] = Span(keep.kind, last.start, max(last.end, s.end), keep.mask)
        else:
            merged.append(s)
    return merged


@dataclass
class Redactor:
    """Masks PII in text; build one per call (``from_config``): it counts what it masked
    (``counts``, by kind) and the tenant patterns that ran out of time (``timeouts``)."""

    entities: frozenset[str] = frozenset({CARD, PHONE, EMAIL})
    patterns: tuple[tuple[str, str], ...] = ()  # (mask name, regular expression)
    pattern_timeout_s: float = PATTERN_TIMEOUT_S
    counts: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    _timed_out: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_config(cls, redaction: Redaction, *, pattern_timeout_s: float = PATTERN_TIMEOUT_S) -> Redactor:
        """The redactor a tenant's configuration describes (whether or not it is enabled)."""
        return cls(
            entities=frozenset(redaction.entities),
            patterns=tuple((p.name.upper(), p.regex) for p in redaction.patterns),
            pattern_timeout_s=pattern_timeout_s,
        )

    def find(self, text: str) -> list[Span]:
        """The spans to mask in ``text``, merged, in order."""
        if not text:
            return []
        tokens = _tokens(text)
        spans: list[Span] = []
        if EMAIL in self.entities:
            spans += _email_spans(text, tokens)
        blocked = [(s.start, s.end) for s in spans]
        if CARD in self.entities or PHONE in self.entities:
            spans += _number_spans(tokens, blocked, set(self.entities))
        for name, pattern in self.patterns:
            if self._timed_out[pattern] >= MAX_PATTERN_TIMEOUTS:
                continue
            try:
                found = [
                    Span(PATTERN, m.start(), m.end(), f"[{name}]")
                    for m in _compiled(pattern).finditer(text, timeout=self.pattern_timeout_s)
                    if m.end() > m.start()
                ]
            except TimeoutError:
                self.timeouts += 1
                self._timed_out[pattern] += 1
                continue
            spans += found
        return _merge(spans)

    def redact(self, text: str) -> Redacted:
        """``text`` with every span masked, and the spans (counted in ``counts``)."""
        spans = self.find(text)
        if not spans:
            return Redacted(text, ())
        self.counts.update(s.kind for s in spans)
        return Redacted(_apply(text, [(s.start, s.end, s.mask) for s in spans]), tuple(spans))

    def redact_segments(self, segments: Sequence[TranscriptSegment]) -> list[TranscriptSegment]:
        """The transcript with its text masked. A speaker's segments less than
        ``JOIN_GAP_S`` apart are read as one text, whatever the other party says in between (a
        card number read out in pieces, the agent saying "mhm" after each, is one number); a span
        across segments is masked in each piece it covers."""
        return self.redact_transcript(segments)[0]

    def redact_transcript(
        self, segments: Sequence[TranscriptSegment]
    ) -> tuple[list[TranscriptSegment], list[SegmentSpan]]:
        """``redact_segments``, and where each mask went: one ``SegmentSpan`` per masked piece,
        its offsets in the segment's original text (what the bleeped audio copy is timed by)."""
        out = list(segments)
        where: list[SegmentSpan] = []
        for group in _speaker_groups(segments):
            texts = [segments[k].text for k in group]
            masked, pieces = self._redact_joined(texts)
            for k, text in zip(group, masked, strict=True):
                if text != segments[k].text:
                    out[k] = segments[k].model_copy(update={"text": text})
            where += [SegmentSpan(group[i], start, end) for i, start, end in pieces]
        where.sort(key=lambda p: (p.index, p.start))
        return out, where

    def _redact_joined(self, texts: Sequence[str]) -> tuple[list[str], list[tuple[int, int, int]]]:
        offsets = []
        pos = 0
        for t in texts:
            offsets.append(pos)
            pos += len(t) + 1
        joined = " ".join(texts)
        spans = self.find(joined)
        if not spans:
            return list(texts), []
        self.counts.update(s.kind for s in spans)
        out = []
        pieces: list[tuple[int, int, int]] = []
        for i, (t, base) in enumerate(zip(texts, offsets, strict=True)):
            local = [
                (max(s.start, base) - base, min(s.end, base + len(t)) - base, s.mask)
                for s in spans
                if s.start < base + len(t) and s.end > base
            ]
            pieces += [(i, a, b) for a, b, _ in local]
            out.append(_apply(t, local) if local else t)
        return out, pieces

    def redact_model(self, model: M) -> M:
        """A copy of ``model`` with every string masked, recursively (nested models, lists,
        dicts and extra fields); strings a ``Literal`` type constrains (an intent) are kept."""
        return _walk_model(model, self)


M = TypeVar("M", bound=BaseModel)


def _speaker_groups(segments: Sequence[TranscriptSegment]) -> list[list[int]]:
    """Indices of each speaker's runs of segments at most ``JOIN_GAP_S`` apart, in order."""
    groups: list[list[int]] = []
    open_group: dict[str, list[int]] = {}
    for k, seg in enumerate(segments):
        group = open_group.get(seg.speaker)
        if group is not None and seg.start - segments[group[-1]].end <= JOIN_GAP_S:
            group.append(k)
            continue
        group = [k]
        groups.append(group)
        open_group[seg.speaker] = group
    return groups


def _apply(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    parts = []
    pos = 0
    for start, end, mask in spans:
        parts.append(text[pos:start])
        parts.append(mask)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def _is_literal(annotation: Any) -> bool:
    if get_origin(annotation) is Literal:
        return True
    return any(_is_literal(a) for a in get_args(annotation))


def _walk(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor.redact(value).text
    if isinstance(value, BaseModel):
        return _walk_model(value, redactor)
    if isinstance(value, list):
        return [_walk(v, redactor) for v in value]
    if isinstance(value, tuple):
        return tuple(_walk(v, redactor) for v in value)
    if isinstance(value, dict):
        return {k: _walk(v, redactor) for k, v in value.items()}
    return value


def _walk_model(model: M, redactor: Redactor) -> M:
    fields = type(model).model_fields
    update: dict[str, Any] = {}
    for name, value in model:
        info = fields.get(name)
        if info is not None and _is_literal(info.annotation):
            continue
        new = _walk(value, redactor)
        if new != value:
            update[name] = new
    return model.model_copy(update=update) if update else model
