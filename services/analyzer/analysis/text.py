"""Transcript text as the built-in engine sees it: normalised tokens, utterance units, stems,
and quotes of the original words.

ASR output is lowercase, unpunctuated, spells numbers as words and gets some words wrong; a
Whisper-class engine adds case, punctuation and digits. Both are reduced to one form, so the
lexicon is written once: lowercase tokens of letters or digits, apostrophes dropped ("don't" ->
"dont"), thousands separators dropped ("10,000" -> "10000"), currency symbols spelled ("$50" ->
"50 dollars"). Quotes always show the original words, so justifications cite what was said.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from schemas.analysis import Speaker, TranscriptSegment

# A segment is cut into units at sentence ends when it is punctuated (Whisper-class output),
# sentences shorter than UNIT_MIN_SENTENCE words joining the next ("Sure. Honestly, ..."), and
# every UNIT_MAX_TOKENS words when it is not (PocketSphinx output): quotes stay short, a need
# and an objection in one breath stay apart, and chapters can start inside a long monologue.
UNIT_MAX_TOKENS = 40
UNIT_MIN_SENTENCE = 4
QUOTE_MAX_WORDS = 30

_CURRENCY = {"$": "dollars", "€": "euros", "£": "pounds"}
_MONEY = re.compile(r"^([$€£])(\d[\d,]*(?:\.\d+)?)([kKmM]?)$")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+|\d+")
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*$")

_STOPWORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i id if ill im in into is it its itself ive
    just let lets me more most my myself no nor not now of off on once only or other our ours ourselves
    out over own same she should so some such than that thats the their theirs them themselves then there
    theres these they theyre this those through to too under until up very was we well were weve what
    whats when where which while who whom why will with would you youd youll your youre yours yourself
    yourselves
    um uh er ah oh hmm yeah yes yep okay ok alright right sure like really actually basically maybe
    gonna wanna kind sort thing things stuff lot bit get got go going know mean say said see think
    want one two three four five six seven eight nine ten hi hello hey bye goodbye thank thanks please
    much many way still even ever every something anything nothing today
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

# Suffix rules for a light stemmer: (suffix, replacement), first match wins, the stem keeping
# at least three letters. Enough to match "prices"/"pricing"/"price" or "integration"/
# "integrate" for keyword overlap; not a linguistic stemmer (and it need not be one: both
# sides of every comparison go through it).
_SUFFIXES = (
    ("ational", "at"),
    ("ations", "at"),
    ("ation", "at"),
    ("ings", ""),
    ("ing", ""),
    ("ies", "y"),
    ("ied", "y"),
    ("edly", ""),
    ("ed", ""),
    ("ly", ""),
    ("ness", ""),
    ("ments", "ment"),
    ("ers", "er"),
    ("es", "e"),
    ("s", ""),
)


def normalise_word(word: str) -> list[str]:
    """The tokens of one whitespace-separated word (zero, one or several)."""
    return list(_normalise_word(word))


# A call's vocabulary is small and repetitive: caching keeps a two-hour transcript fast.
@functools.lru_cache(maxsize=65_536)
def _normalise_word(word: str) -> tuple[str, ...]:
    w = word.lower().replace("\u2019", "'").strip('.,!?;:"()[]{}<>*')
    money = _MONEY.match(w)
    if money:
        symbol, amount, scale = money.groups()
        tokens = [amount.replace(",", "")]
        if scale:
            tokens.append(scale.lower())
        tokens.append(_CURRENCY[symbol])
        return tuple(tokens)
    w = _THOUSANDS.sub("", w).replace("'", "")
    for symbol, name in _CURRENCY.items():
        w = w.replace(symbol, f" {name} ")
    return tuple(_TOKEN.findall(w.replace("%", " percent ")))


def normalise(text: str) -> str:
    """``text`` as lexicon patterns see it: normalised tokens joined by single spaces."""
    return " ".join(t for w in text.split() for t in normalise_word(w))


@functools.lru_cache(maxsize=65_536)
def stem(token: str) -> str:
    """A crude, deterministic stem (see ``_SUFFIXES``)."""
    w = token
    if w.isdigit():
        return w
    for suffix, replacement in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            if suffix == "s" and w.endswith("ss"):
                break
            w = w[: -len(suffix)] + replacement
            break
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    if len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]
    return w


def content_stems(tokens: Iterable[str]) -> list[str]:
    """Stems of the tokens that carry meaning (no stopwords, no one-letter tokens)."""
    return [stem(t) for t in tokens if len(t) > 1 and t not in STOPWORDS and not t.isdigit()]


def stems_match(a: str, b: str) -> bool:
    """Equal stems, or one a prefix of the other of at least five letters ("integr"/"integrat")."""
    if a == b:
        return True
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    return len(short) >= 5 and long_.startswith(short)


def clock(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` from one hour), truncated to the second."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


@dataclass(frozen=True)
class Unit:
    """One utterance: a transcript segment, or a piece of a long one."""

    index: int
    speaker: Speaker
    start: float
    end: float
    words: tuple[str, ...]
    """The original words (quotes are cut from these)."""
    tokens: tuple[str, ...]
    token_word: tuple[int, ...]
    """For each token, the index of the word it came from."""
    norm: str
    """The tokens joined by single spaces: what lexicon patterns run on."""
    offsets: tuple[int, ...]
    """Where each token starts in ``norm``."""
    stems: tuple[str, ...] = field(default=())
    """Content stems, in order."""

    def token_at(self, char: int) -> int:
        """The index of the token containing character ``char`` of ``norm``."""
        return max(0, bisect.bisect_right(self.offsets, char) - 1)

    def span_of(self, char_start: int, char_end: int) -> tuple[int, int]:
        """Token span ``[first, last)`` covering characters ``[char_start, char_end)`` of ``norm``."""
        return self.token_at(char_start), self.token_at(max(char_start, char_end - 1)) + 1

    def quote(self, span: tuple[int, int] | None = None, max_words: int = QUOTE_MAX_WORDS) -> str:
        """The original words, in double quotes; around ``span`` (a token span) when the unit is
        too long to quote whole, with an ellipsis where it was cut."""
        n = len(self.words)
        if n <= max_words:
            first, last = 0, n
        elif span is None or span[1] <= span[0]:
            first, last = 0, max_words
        else:
            w_first = self.token_word[span[0]] if span[0] < len(self.token_word) else 0
            w_last = self.token_word[min(span[1], len(self.token_word)) - 1] + 1
            # Some context before the cue, the rest after it: a cue opens its own statement.
            first = max(0, min(w_first - 6, n - max_words))
            last = min(n, max(first + max_words, w_last))
            first = max(0, min(first, last - max_words))
        text = " ".join(self.words[first:last]).strip()
        text = text.rstrip(",;:")
        prefix = "\u2026" if first > 0 else ""
        suffix = "\u2026" if last < n else ""
        return f'"{prefix}{text}{suffix}"'

    def words_of(self, span: tuple[int, int]) -> str:
        """The original words covering a token span, without surrounding punctuation."""
        if span[1] <= span[0]:
            return ""
        first = self.token_word[span[0]]
        last = self.token_word[min(span[1], len(self.token_word)) - 1] + 1
        return " ".join(self.words[first:last]).strip(".,!?;:\"'()[]")

    @property
    def who(self) -> str:
        """ "agent", "customer" or "" when the speaker is not known (mono)."""
        return "" if self.speaker == "unknown" else self.speaker

    def cite(self, span: tuple[int, int] | None = None, max_words: int = QUOTE_MAX_WORDS) -> str:
        """``customer at 00:42: "what was said"`` (``00:42: "..."`` when the speaker is unknown)."""
        where = f"{self.who} at {clock(self.start)}" if self.who else clock(self.start)
        return f"{where}: {self.quote(span, max_words)}"


def _make_unit(index: int, speaker: Speaker, start: float, end: float, words: Sequence[str]) -> Unit | None:
    tokens: list[str] = []
    token_word: list[int] = []
    for i, word in enumerate(words):
        for token in normalise_word(word):
            tokens.append(token)
            token_word.append(i)
    if not tokens:
        return None
    offsets = []
    pos = 0
    for token in tokens:
        offsets.append(pos)
        pos += len(token) + 1
    return Unit(
        index=index,
        speaker=speaker,
        start=start,
        end=end,
        words=tuple(words),
        tokens=tuple(tokens),
        token_word=tuple(token_word),
        norm=" ".join(tokens),
        offsets=tuple(offsets),
        stems=tuple(content_stems(tokens)),
    )


def _pieces(words: list[str]) -> list[list[str]]:
    """Words cut into sentences and at most UNIT_MAX_TOKENS-word pieces (see UNIT_MAX_TOKENS)."""
    pieces: list[list[str]] = []
    current: list[str] = []
    for word in words:
        current.append(word)
        at_sentence_end = bool(_SENTENCE_END.search(word)) and len(current) >= UNIT_MIN_SENTENCE
        if at_sentence_end or len(current) >= UNIT_MAX_TOKENS:
            pieces.append(current)
            current = []
    if current:
        if pieces and len(current) < UNIT_MIN_SENTENCE:
            pieces[-1].extend(current)
        else:
            pieces.append(current)
    return pieces


def build_units(transcript: Sequence[TranscriptSegment]) -> list[Unit]:
    """The transcript as units, in time order (segments without words are skipped)."""
    units: list[Unit] = []
    ordered = sorted(transcript, key=lambda s: (s.start, s.end))
    for segment in ordered:
        words = segment.text.split()
        if not words:
            continue
        pieces = _pieces(words)
        span = max(0.0, segment.end - segment.start)
        done = 0
        for piece in pieces:
            # Times inside a long segment are interpolated by word position.
            start = segment.start + span * done / len(words)
            done += len(piece)
            end = segment.start + span * done / len(words)
            unit = _make_unit(len(units), segment.speaker, start, end, piece)
            if unit is not None:
                units.append(unit)
    return units


def word_count(units: Iterable[Unit]) -> int:
    """Tokens across ``units``."""
    return sum(len(u.tokens) for u in units)


def bullets(items: Sequence[str]) -> str | None:
    """One item as is, several as ``- `` lines, none as None."""
    unique = list(dict.fromkeys(items))
    if not unique:
        return None
    if len(unique) == 1:
        return unique[0]
    return "\n".join(f"- {item}" for item in unique)
