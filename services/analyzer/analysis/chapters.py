"""Chapters: topic segmentation of the transcript, a name and a summary for each.

Segmentation is TextTiling-style lexical cohesion (Hearst, 1997) over utterance windows: at
each gap between two utterances, the cosine similarity of the content stems (and topic cues,
weighted up) of the window before and the window after; a deep valley in that similarity is a
topic change. A phrase announcing a change ("let's talk about", "moving on") deepens it. The
deepest valleys become chapter boundaries, as many as the call's length warrants
(``target_chapters``), no chapter shorter than ``MIN_CHAPTER_WORDS`` words.

Names come from the dominant topic cues of a chapter ("Pricing", "Next steps", "Pricing and
next steps"), or, without any, from its most distinctive words. Summaries are third-person
sentences of what each side said and agreed in the chapter (``summary``).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence

from schemas.analysis import Chapter

from . import lexicon as lx
from .findings import Findings
from .summary import summarise
from .text import STOPWORDS, Unit, stem, word_count

MIN_CHAPTER_WORDS = 40
MAX_CHAPTERS = 12
#: Words per chapter grow with the call: about sqrt(words / 60) chapters (1 for a one-minute
#: call, 3 for ten minutes, 12 from about an hour).
WORDS_SCALE = 60
_TOPIC_WEIGHT = 3  # a topic cue weighs like three shared words
_SHIFT_BONUS = 0.3

TOPICS: Mapping[str, lx.Pattern] = {
    "Introduction": lx.rx(
        r"hi",
        r"hello",
        r"good (?:morning|afternoon|evening)",
        r"how are you",
        r"this is \w+",
        r"my name is",
        r"calling from",
        r"(?:couple|few) (?:of )?minutes",
    ),
    "Agenda": lx.rx(r"agenda", r"reason for (?:my|this|the) call", r"purpose", r"first \w+(?: \w+){0,12} then"),
    "Current process": lx.rx(
        r"how do you",
        r"currently",
        r"at the moment",
        r"process",
        r"today",
        r"manually",
        r"by hand",
        r"(?:your|our) team",
        r"how many",
    ),
    "Product overview": lx.rx(
        r"(?:our|the) (?:product|platform|solution|software|tool|service|app)",
        r"features?",
        r"dashboards?",
        r"reports?",
        r"alerts?",
        r"we help",
        r"records?",
        r"it (?:helps|lets|allows|shows|records)",
    ),
    "Pricing": lx.rx(
        r"prices?",
        r"pricing",
        r"costs?",
        r"dollars?",
        r"euros?",
        r"(?:team|basic|starter|pro|enterprise) plan",
        r"plans?",
        r"per (?:user|seat|month|year)",
        r"expensive",
        r"budget",
        r"discount",
        r"afford",
        r"pay",
    ),
    "Decision process": lx.AUTHORITY,
    "Timeline": lx.TIMELINE,
    "Objections": lx.rx(
        r"concerns?",
        r"worried",
        r"problem",
        r"too expensive",
        r"not sure",
        r"(?:dont|do not) think",
        r"not interested",
    ),
    "Integration": lx.CATEGORY_WORDS["Integration"],
    "Security and privacy": lx.rx(
        r"secur\w*", r"privacy", r"gdpr", r"complian\w*", r"trust\w*", r"data protection", r"encrypt\w*"
    ),
    "Refusal": lx.rx(
        r"not (?:really |at all )?interested",
        r"remove (?:us|me)",
        r"(?:dont|do not|stop) call(?:ing)? (?:us|me)",
        r"no thank(?:s| you)",
        r"not for us",
    ),
    "Next steps": lx.rx(
        r"next steps?",
        r"demo",
        r"proposal",
        r"follow up",
        r"schedule",
        r"book",
        r"trial",
        r"send (?:you|me|us)",
        r"meeting",
        r"calendar",
    ),
    "Closing": lx.rx(
        r"thank(?:s| you)",
        r"good ?bye",
        r"bye",
        r"have a (?:great|good|nice) (?:day|week|one)",
        r"take care",
        r"look(?:ing)? forward",
    ),
}


def _topics(unit: Unit) -> Counter[str]:
    found: Counter[str] = Counter()
    for name, pattern in TOPICS.items():
        n = len(pattern.findall(unit.norm))
        if n:
            found[name] = n
    return found


def target_chapters(words: int, units: int) -> int:
    """How many chapters a call of ``words`` words in ``units`` utterances gets."""
    if words < 2 * MIN_CHAPTER_WORDS or units < 4:
        return 1
    wanted = round(math.sqrt(words / WORDS_SCALE))
    return max(1, min(MAX_CHAPTERS, wanted, units // 2, words // MIN_CHAPTER_WORDS))


def _cosine(a: Counter[str], b: Counter[str]) -> float:
    if not a or not b:
        return 0.0
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    dot = sum(v * large.get(k, 0.0) for k, v in small.items())
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb)


def _features(unit: Unit, topics: Counter[str]) -> Counter[str]:
    features: Counter[str] = Counter(unit.stems)
    for name, n in topics.items():
        features["#" + name] += _TOPIC_WEIGHT * n
    return features


def _gap_scores(units: Sequence[Unit], features: Sequence[Counter[str]], window: int) -> list[float]:
    """Depth score of the gap before each utterance (index 0 unused)."""
    n = len(units)
    sims = [0.0] * n
    left: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for j in range(min(window, n)):
        right.update(features[j])
    # Slide both windows one utterance at a time: O(n * features), not O(n * window).
    for i in range(1, n):
        left.update(features[i - 1])
        right.subtract(features[i - 1])
        if i - 1 - window >= 0:
            left.subtract(features[i - 1 - window])
        if i + window - 1 < n:
            right.update(features[i + window - 1])
        sims[i] = _cosine(+left, +right)
    depths = [0.0] * n
    for i in range(1, n):
        lp = sims[i]
        j = i - 1
        while j >= 1 and sims[j] >= lp:
            lp = sims[j]
            j -= 1
        rp = sims[i]
        j = i + 1
        while j < n and sims[j] >= rp:
            rp = sims[j]
            j += 1
        depths[i] = (lp - sims[i]) + (rp - sims[i])
        if lx.TOPIC_SHIFT.search(units[i].norm):
            depths[i] += _SHIFT_BONUS
    return depths


def segment(units: Sequence[Unit]) -> list[list[Unit]]:
    """The utterances cut into chapters (see the module docstring)."""
    if not units:
        return []
    total_words = word_count(units)
    target = target_chapters(total_words, len(units))
    if target == 1:
        return [list(units)]
    topics = [_topics(u) for u in units]
    features = [_features(u, t) for u, t in zip(units, topics, strict=True)]
    window = max(2, min(8, len(units) // (2 * target)))
    depths = _gap_scores(units, features, window)
    cumulative = [0]
    for unit in units:
        cumulative.append(cumulative[-1] + len(unit.tokens))

    boundaries: list[int] = []
    for gap in sorted(range(1, len(units)), key=lambda g: (-depths[g], g)):
        if len(boundaries) >= target - 1 or depths[gap] <= 0:
            break
        cuts = sorted([0, *boundaries, gap, len(units)])
        if all(cumulative[b] - cumulative[a] >= MIN_CHAPTER_WORDS and b - a >= 2 for a, b in itertools.pairwise(cuts)):
            boundaries.append(gap)
    cuts = [0, *sorted(boundaries), len(units)]
    return [list(units[a:b]) for a, b in itertools.pairwise(cuts)]


def _distinctive_words(chapter: Sequence[Unit], document_frequency: Counter[str], chapters: int) -> list[str]:
    """The chapter's two most distinctive words (tf-idf over chapters), as spoken."""
    tf: Counter[str] = Counter()
    spoken: dict[str, Counter[str]] = {}
    for unit in chapter:
        for token in unit.tokens:
            if len(token) < 4 or token in STOPWORDS or token.isdigit():
                continue
            s = stem(token)
            tf[s] += 1
            spoken.setdefault(s, Counter())[token] += 1
    scored = sorted(tf, key=lambda s: (-tf[s] * math.log(1 + chapters / document_frequency[s]), s))
    return [spoken[s].most_common(1)[0][0] for s in scored[:2]]


def _name(topics: Sequence[Counter[str]], fallback: list[str], second_ratio: float) -> str:
    """The dominant topic, or the two dominant ones in the order they came up when the second
    reaches ``second_ratio`` of the first."""
    totals: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    for i, found in enumerate(topics):
        totals.update(found)
        for name in found:
            first_seen.setdefault(name, i)
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], list(TOPICS).index(kv[0])))
    if ranked:
        top, score = ranked[0]
        if len(ranked) > 1 and ranked[1][1] >= max(1.0, second_ratio * score):
            first, second = sorted((top, ranked[1][0]), key=lambda name: (first_seen[name], list(TOPICS).index(name)))
            return f"{first} and {second.lower()}"
        return top
    if fallback:
        return " and ".join(fallback).capitalize()
    return "Conversation"


def chapters(units: Sequence[Unit], f: Findings) -> list[Chapter]:
    """The call's chapters with names and summaries (``summary.summarise``)."""
    parts = segment(units)
    texts = summarise(parts, f)
    topic_lists = [[_topics(u) for u in part] for part in parts]
    document_frequency: Counter[str] = Counter()
    for part in parts:
        document_frequency.update({s for u in part for s in u.stems})
    result: list[Chapter] = []
    used: Counter[str] = Counter()
    for part, topics, text in zip(parts, topic_lists, texts, strict=True):
        # A call in one chapter is named after its two main topics, not just the loudest one.
        ratio = 0.3 if len(parts) == 1 else 0.6
        name = _name(topics, _distinctive_words(part, document_frequency, len(parts)), ratio)
        used[name] += 1
        if used[name] > 1:
            name = f"{name} (part {used[name]})"
        result.append(Chapter(chapter_name=name, chapter_summary=text))
    return result
