"""Chapter summaries that read as summaries: third-person sentences saying what each side said
and agreed, not a list of quotes.

Every utterance of a chapter is read for one *act* (what it does in the conversation), in this
order of precedence:

==============  ========  ===============================================================
act             speaker   sentence
==============  ========  ===============================================================
opening         agent     "Rachel from SmileDesk called about the customer's scheduling."
refusal         customer  "The customer declined: they are not interested."
request         customer  "The customer asked the agent to send them a proposal."
commitment      agent     "The agent committed to send the quote this afternoon; the customer agreed."
objection       customer  "The customer raised a pricing concern: ..."
answer          agent     "The agent answered that ..." (the reply to an objection)
acceptance      customer  "The customer accepted."
qualification   customer  budget, decision maker or timeline: "The customer said ..."
need            customer  "The customer said their receptionist spends half the day on the phone."
interest        customer  "The customer asked about the price." / "The customer said that sounds useful."
price           agent     "The agent quoted $120 a month."
pitch           agent     "The agent explained that SmileDesk lets patients book online ..."
discovery       agent     "Asked how they count stock today, the customer said ..."
==============  ========  ===============================================================

The words are the speakers' own, turned into reported speech (``reported``: "I"/"we" become
"they", the agent's "you" becomes "the customer", verbs agree), with spoken amounts written as
"$5,000". A chapter's summary is its most important acts (``PRIORITY``), at most
``MIN_SENTENCES`` to ``MAX_SENTENCES`` by the chapter's length, in the order they happened; a
refusal said twice is told once. On a mono recording whose speakers could not be
separated, sentences say "one speaker" instead of naming a side.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from . import lexicon as lx
from .findings import Findings
from .numbers import find_amounts
from .text import Unit

#: Sentences per chapter: a few, and one more per ``WORDS_PER_SENTENCE`` words of the chapter.
MIN_SENTENCES = 4
MAX_SENTENCES = 8
WORDS_PER_SENTENCE = 40
CLAUSE_MAX_WORDS = 28
#: Which acts make it into a chapter's summary first (higher first; ties: earlier first).
PRIORITY = {
    "opening": 6,
    "refusal": 6,
    "request": 6,
    "commitment": 6,
    "objection": 5,
    "answer": 5,
    "qualification": 4,
    "acceptance": 4,
    "need": 3,
    "interest": 3,
    "price": 3,
    "pitch": 2,
    "discovery": 2,
    "statement": 0,
    "skip": -1,
}

# Reported speech: the speaker's pronouns as a third person says them.
_CUSTOMER_PRONOUNS = {
    "i": "they",
    "me": "them",
    "my": "their",
    "mine": "theirs",
    "myself": "themselves",
    "we": "they",
    "us": "them",
    "our": "their",
    "ours": "theirs",
    "ourselves": "themselves",
    "i'm": "they're",
    "im": "they're",
    "i've": "they've",
    "ive": "they've",
    "i'd": "they'd",
    "i'll": "they'll",
    "we're": "they're",
    "we've": "they've",
    "we'd": "they'd",
    "we'll": "they'll",
    "you": "the agent",
    "your": "the agent's",
}
_AGENT_PRONOUNS = {
    **{k: v for k, v in _CUSTOMER_PRONOUNS.items() if k not in ("you", "your")},
    "you": "the customer",
    "your": "the customer's",
    "yours": "the customer's",
    "you're": "the customer is",
    "youre": "the customer is",
    "you've": "the customer has",
    "you'll": "the customer will",
    "you'd": "the customer would",
}
# After "they" (from "I"), and after "the customer" (from "you"), verbs agree.
_THEY_AGREES = {"am": "are", "was": "were", "'m": "are"}
_CUSTOMER_AGREES = {
    "are": "is",
    "were": "was",
    "have": "has",
    "do": "does",
    "don't": "doesn't",
    "dont": "doesn't",
    "get": "gets",
    "need": "needs",
    "want": "wants",
    "pay": "pays",
    "save": "saves",
    "see": "sees",
    "keep": "keeps",
    "know": "knows",
    "use": "uses",
    "like": "likes",
    "spend": "spends",
    "lose": "loses",
    "only": "only",
}
_EDGE_PUNCT = ".,!?;:\"'()[]"
_QUESTION_OPENERS = re.compile(
    r"^(?:so |and |but |okay |ok |well |great |right |now )*"
    r"(?:how|what|whats|which|who|when|where|why|do|does|did|are|is|have|has|can|could|would|will)\b"
)
_WH = r"(?:how(?: many| much| often| long| big| soon)?(?: \w+)?|what(?: kind of \w+)?|which \w+|who|when|where|why)"
_WH_DO = re.compile(rf"^({_WH} )(?:do|does|did) ")
_WH_AUX = re.compile(rf"^({_WH} )(are|is|were|was|can|could|will|would|have|has|should) (you|your \w+) ")
#: Words that open an utterance without saying anything ("Great. We are running ...").
_FILLER = re.compile(
    r"^(?:(?:okay|ok|great|yes|yeah|yep|sure|well|right|so|fair enough|sound good|sounds good|perfect|hmm|oh|alright|"
    r"thanks|thank you|wonderful|lovely|honestly|to be honest|look|um|uh|i see|good)[,.!?]?\s+)+",
    re.IGNORECASE,
)
_REQUEST = re.compile(r"\b(?:can|could|would|will) you (?:please )?(.+)")
_IMPERATIVE = re.compile(
    r"^(?:please |just |so |then |okay |ok |yes |well )*"
    r"((?:send|email|mail|call|ring|phone|try|give|get back|book|set up|show|sign)\b.*)"
)
_INTRO = re.compile(
    r"\b(?:this is|my name is|it is|its|it's|i am|i'm|im) ([a-z]+)(?: here)?(?: (?:from|with|at) ((?:the )?[a-z]+))?"
    r"|\b(?:hi|hello|hey)(?: there)? ([a-z]+)(?: here)? (?:from|with|at) ((?:the )?[a-z]+)"
)
#: Where the reason for the call stops when nothing punctuates it (speech recognition output).
_PURPOSE_END = re.compile(
    r"\b(?:can i|could i|may i|do you|how (?:do|does|did|are|is|many|much)|what (?:do|does|is|are|would)|is now|"
    r"are you|have you|i would like|first|thanks|thank you|does that|is that|sound good)\b"
)
_PURPOSE_TAIL = re.compile(
    r"\b(?:calling|call|reaching out|ringing|getting in touch) (?:you )?(about|to|because|regarding|as)\b (.+)"
    r"|\breason (?:for|of) (?:my|this|the|our) call is (.+)"
    r"|\breason (?:i am|im|i'm|we are|were) (?:calling|reaching out) is (.+)"
    r"|\b(?:i would|i'd|id|we would|we'd|i want|i wanted) (?:like )?(to) (.+)"
)
_NOT_NAMES = frozenset(
    [
        "calling",
        "called",
        "call",
        "going",
        "speaking",
        "here",
        "just",
        "the",
        "a",
        "your",
        "not",
        "there",
        "good",
        "sorry",
        "so",
        "ok",
        "okay",
        "this",
        "it",
        "is",
        "me",
        "glad",
        "happy",
        "fine",
        "well",
        "great",
        "sure",
        "from",
    ]
)
#: A commitment ends where the closing pleasantries start (nothing punctuates ASR output).
_COMMITMENT_END = re.compile(r"\b(?:thank you|thanks|bye|goodbye|have a (?:good|great|nice))\b")
_SUGGESTION = re.compile(r"\b(?:let's|lets|let us) (.+)")
_COMMITMENT = re.compile(r"\b(?:i will|i'll|ill|we will|we'll|well|i can|let me) (.+)")


@dataclass(frozen=True)
class Act:
    kind: str
    unit: Unit
    sentence: str


def _words(unit: Unit, limit: int = CLAUSE_MAX_WORDS) -> list[str]:
    words = list(unit.words)
    if len(words) > limit:
        words = [*words[:limit], "\u2026"]
    return words


def reported(words: Sequence[str], speaker: str) -> str:
    """``words`` as reported speech from the third person (see the module docstring)."""
    table = _AGENT_PRONOUNS if speaker == "agent" else _CUSTOMER_PRONOUNS
    out: list[str] = []
    previous = ""
    for word in words:
        core = word.strip(_EDGE_PUNCT)
        lead = word[: len(word) - len(word.lstrip(_EDGE_PUNCT))]
        trail = word[len(word.rstrip(_EDGE_PUNCT)) :]
        key = core.lower().replace("\u2019", "'")
        replacement = None if key in ("you", "your") and previous in ("thank", "see") else table.get(key)
        if replacement is None and previous == "they" and key in _THEY_AGREES:
            replacement = _THEY_AGREES[key]
        elif replacement is None and previous == "the customer" and key in _CUSTOMER_AGREES:
            replacement = _CUSTOMER_AGREES[key]
        if replacement is not None:
            previous = replacement
            out.append(f"{lead}{replacement}{trail}")
        else:
            previous = key
            out.append(word)
    return _amounts(" ".join(out)).strip().rstrip(",;:")


def _amounts(text: str) -> str:
    """Spoken amounts written as figures ("five thousand dollars" -> "$5,000")."""
    words = text.split()
    lowered = [w.lower().strip(_EDGE_PUNCT) for w in words]
    found = [a for a in find_amounts(lowered) if a.currency]
    for amount in reversed(found):
        trail = words[amount.end - 1][len(words[amount.end - 1].rstrip(_EDGE_PUNCT)) :]
        words[amount.start : amount.end] = [amount.text + trail]
    return " ".join(words)


def _tidy(text: str) -> str:
    """One clause: fillers dropped from its start, its sentences joined by semicolons, the
    first letter lowercased (it follows "said that", "answered that" ...)."""
    text = _FILLER.sub("", text.strip())
    text = _TRAILER.sub("", text)
    text = re.sub(r"([.!?])\s+(?=\w)", "; ", text).rstrip(".!?")
    return re.sub(r"(^|; )([A-Z])(?![A-Z])(?!\b)", lambda m: m.group(1) + m.group(2).lower(), text)


_TRAILER = re.compile(
    r"(?:[,.;!?]?\s+(?:sound good|sounds good|okay|ok|right|alright|is that okay|does that work|bye|goodbye|good bye|"
    r"thanks|thank you|cheers|thanks anyway|thank you anyway)[.!?]?)+\s*$",
    re.IGNORECASE,
)


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]


def _sentence(text: str) -> str:
    text = " ".join(text.split()).strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?\u2026" else text + "."


def _clause(unit: Unit, speaker: str) -> str:
    """The utterance as reported speech, without its final punctuation."""
    return _tidy(reported(_words(unit), speaker)) or _tidy(" ".join(unit.words))


def _question(unit: Unit) -> str | None:
    """An agent's question as an indirect question ("how they count stock today")."""
    text = " ".join(_words(unit, 20)).lower().replace("?", "")
    text = re.sub(r"^(?:so|and|great|okay|ok|right|now|well)[,.]? ", "", text)
    match = _WH_DO.match(text)
    aux = _WH_AUX.match(text)
    if match:
        text = match.group(1) + text[match.end() :]
    elif aux:
        text = f"{aux.group(1)}{aux.group(3)} {aux.group(2)} " + text[aux.end() :]
    elif not re.match(r"^(?:how|what|which|who|when|where|why)\b", text):
        return None
    # The customer is the subject of "Asked ..., the customer said": "you" is "they" here.
    text = re.sub(r"\byour\b", "their", re.sub(r"\byou\b", "they", text))
    return reported(text.split(), "agent")


class _Reader:
    """Finds the act of each utterance, given what the findings already established."""

    def __init__(self, f: Findings) -> None:
        self.f = f
        # The first utterance of each objection, and the categories heard in it.
        self.objection_units: dict[int, tuple[str, ...]] = {}
        for o in f.objections:
            for hit in o.hits:
                own = tuple(c for c in o.categories if hit.text == c)
                self.objection_units.setdefault(hit.unit.index, own or o.categories)
        self.opening: dict[int, Act] = {}
        self.reply_units = {u.index: o for o in f.objections for u in o.reply[:1]}
        self.need_units = {h.unit.index for h in f.needs}
        self.qualification_units = {h.unit.index for h in (*f.budget, *f.authority, *f.timeline)}
        self.refusal_units = {
            h.unit.index for h in f.intent_hits.get("NOT_INTERESTED", []) if h.unit.speaker != "agent"
        }
        self.interest_units = {h.unit.index for h in f.intent_hits.get("INTERESTED", []) if h.unit.speaker != "agent"}
        self.followup_units = {h.unit.index for h in f.intent_hits.get("FOLLOW_UP", []) if h.unit.speaker != "agent"}

    def who(self, unit: Unit) -> str:
        if unit.speaker == "unknown":
            return "one speaker"
        return f"the {unit.speaker}"

    def act(self, unit: Unit, position: int, units: Sequence[Unit]) -> Act:
        who = self.who(unit)
        speaker = unit.speaker if unit.speaker != "unknown" else "customer"
        norm = unit.norm
        nxt = units[position + 1] if position + 1 < len(units) else None
        if unit.index in self.opening:
            return self.opening[unit.index]
        if unit.speaker != "customer":
            said = " ".join(unit.words)
            commitment = _COMMITMENT.search(said.lower().replace("\u2019", "'"))
            if commitment and lx.NEXT_STEP_ACTION.search(norm):
                own = _first_sentence(said[commitment.start(1) : commitment.end(1)])
                end = _COMMITMENT_END.search(own.lower())
                own = own[: end.start()] if end and end.start() > 0 else own
                words = _tidy(reported(own.split()[:CLAUSE_MAX_WORDS], "agent"))
                agreed = nxt is not None and nxt.speaker == "customer" and bool(lx.ACCEPTANCE.search(nxt.norm))
                tail = "; the customer agreed" if agreed else ""
                return Act("commitment", unit, _sentence(f"{who} committed to {words}{tail}"))
            if unit.index in self.reply_units:
                o = self.reply_units[unit.index]
                if o.answered:
                    return Act("answer", unit, _sentence(f"{who} answered that {_clause(unit, speaker)}"))
                how = "acknowledged the concern but did not answer it" if o.acknowledged else "did not answer it"
                return Act("answer", unit, _sentence(f"{who} {how}"))
            question = _question(unit) if unit.speaker == "agent" else None
            if question and nxt is not None and nxt.speaker == "customer" and len(nxt.tokens) >= 2:
                answer = _clause(nxt, "customer")
                return Act("discovery", unit, _sentence(f"Asked {question}, the customer said {answer}"))
            amounts = [a for a in find_amounts(unit.tokens) if a.currency or a.period]
            if amounts and unit.speaker == "agent":
                return Act("price", unit, _sentence(f"{who} said {_clause(unit, speaker)}"))
            if lx.CAPABILITY.search(norm) or lx.PITCH.search(norm):
                return Act("pitch", unit, _sentence(f"{who} explained that {_clause(unit, speaker)}"))
            if unit.speaker == "agent":
                return Act("statement", unit, _sentence(f"{who} said {_clause(unit, speaker)}"))
        # The customer's side (or either side on an unseparated mono recording).
        if unit.index in self.refusal_units:
            clause = _clause(unit, speaker)
            said = f": {clause}" if len(clause.split()) >= 3 else ""
            return Act("refusal", unit, _sentence(f"{who} declined{said}"))
        suggestion = _SUGGESTION.search(" ".join(unit.words).lower().replace("\u2019", "'"))
        if suggestion and (unit.index in self.interest_units or unit.index in self.followup_units):
            text = reported(_first_sentence(suggestion.group(1)).split(), "customer")
            return Act("request", unit, _sentence(f"{who} proposed to {_tidy(text)}"))
        found = self._request(unit)
        if found is not None and (unit.index in self.interest_units or unit.index in self.followup_units):
            before, request = found
            # What the customer said first in the same breath, when it matters ("we have about
            # $5,000 for this, could you send me a quote?").
            said = f"said {before} and " if before and unit.index in self.qualification_units else ""
            return Act("request", unit, _sentence(f"{who} {said}asked the agent to {request}"))
        if unit.index in self.objection_units:
            named = [c.lower() for c in self.objection_units[unit.index] if c != "Other"]
            kind = " and ".join(named)
            label = f"{'an' if kind[:1] in ('a', 'i') else 'a'} {kind} concern" if kind else "a concern"
            return Act("objection", unit, _sentence(f"{who} raised {label}: {_clause(unit, speaker)}"))
        if unit.index in self.followup_units:
            return Act("request", unit, _sentence(f"{who} deferred: {_clause(unit, speaker)}"))
        if unit.index in self.qualification_units:
            return Act("qualification", unit, _sentence(f"{who} said {_clause(unit, speaker)}"))
        if unit.index in self.interest_units:
            if re.search(r"\b(?:how much|cost|price|pricing|fee)\b", norm) and _QUESTION_OPENERS.search(norm):
                return Act("interest", unit, _sentence(f"{who} asked about the price"))
            previous = units[position - 1] if position else None
            if (
                previous is not None
                and previous.speaker == "agent"
                and lx.ACCEPTANCE.search(norm)
                and len(unit.tokens) <= 6
            ):
                return Act("acceptance", unit, _sentence(f"{who} accepted"))
            return Act("interest", unit, _sentence(f"{who} said {_clause(unit, speaker)}"))
        if unit.index in self.need_units:
            return Act("need", unit, _sentence(f"{who} said {_clause(unit, speaker)}"))
        return Act("statement", unit, _sentence(f"{who} said {_clause(unit, speaker)}"))

    def read_opening(self, units: Sequence[Unit]) -> None:
        """The agent's first turn (its first three utterances) as one opening sentence, given to
        its first utterance; the turn's other utterances add nothing more."""
        first = [u for u in units[:4] if u.speaker == "agent"][:3]
        said = [u for u in first if lx.INTRODUCTION.search(u.norm) or lx.PURPOSE.search(u.norm)]
        if not said:
            return
        act = self._opening(said, self.who(said[0]))
        self.opening[said[0].index] = act
        for u in said[1:]:
            self.opening[u.index] = Act("skip", u, "")

    def _opening(self, units: Sequence[Unit], who: str) -> Act:
        unit = units[0]
        text = " ".join(w for u in units for w in u.words)
        lowered = text.lower().replace("\u2019", "'")
        intro = next((m for m in _INTRO.finditer(lowered) if (m.group(1) or m.group(3)) not in _NOT_NAMES), None)
        name = who
        if intro:
            person_group, company_group = (1, 2) if intro.group(1) else (3, 4)
            original = text.split()
            index = len(lowered[: intro.start(person_group)].split())
            person = original[index].strip(_EDGE_PUNCT) if index < len(original) else intro.group(person_group)
            name = person[0].upper() + person[1:]
            if intro.group(company_group):
                first = len(lowered[: intro.start(company_group)].split())
                company = [original[first].strip(_EDGE_PUNCT)]
                # Further words of the company's name are the capitalised ones that follow it,
                # up to the end of the sentence.
                raw = original[first]
                for word in original[first + 1 : first + 4]:
                    if not word[:1].isupper() or raw != raw.rstrip(_EDGE_PUNCT):
                        break
                    company.append(word.strip(_EDGE_PUNCT))
                    raw = word
                name += " from " + " ".join(c[:1].upper() + c[1:] for c in company if c)
            name += " (the agent)"
        purpose = _PURPOSE_TAIL.search(lowered)
        if purpose:
            groups = [g for g in purpose.groups() if g]
            link = groups[0] if len(groups) == 2 else "about"
            tail_text = groups[-1].split(".")[0].split("?")[0]
            stop = _PURPOSE_END.search(tail_text)
            tail = (tail_text[: stop.start()] if stop and stop.start() > 0 else tail_text).split()[:16]
            clause = reported(tail, "agent")
            verb = {"to": "called to", "because": "called because", "as": "called as"}.get(link, "called about")
            agenda = (
                " and set out an agenda for the call" if any(lx.AGENDA_STRUCTURE.search(u.norm) for u in units) else ""
            )
            return Act("opening", unit, _sentence(f"{name} {verb} {_tidy(clause)}{agenda}"))
        return Act("opening", unit, _sentence(f"{name} introduced themselves and opened the call"))

    def _request(self, unit: Unit) -> tuple[str, str] | None:
        """(what was said before the request, the request) in reported speech, or None."""
        text = " ".join(_words(unit)).replace("\u2019", "'")
        lowered = text.lower()
        offset = 0
        for raw in re.split(r"(?<=[.?!])\s+", lowered):
            start = lowered.index(raw, offset)
            offset = start + len(raw)
            sentence = raw.strip()
            match = _REQUEST.search(sentence) or _IMPERATIVE.match(sentence)
            if match:
                at = start + (match.start(0) if match.re is _REQUEST else 0)
                before = _tidy(reported(text[:at].split(), "customer")) if at else ""
                return before, reported(match.group(1).rstrip(".?!").split(), "customer")
        return None


def summarise(parts: Sequence[Sequence[Unit]], f: Findings) -> list[str]:
    """One summary per chapter (``parts``, in order): see the module docstring."""
    reader = _Reader(f)
    reader.read_opening(f.units)
    summaries = []
    for part in parts:
        acts = [reader.act(unit, i, part) for i, unit in enumerate(part)]
        # An answer that is itself an objection, a refusal or a request is told as that, not
        # again as the answer to a question; other answers are told with their question.
        for i, a in enumerate(acts[:-1]):
            if a.kind == "discovery" and PRIORITY[acts[i + 1].kind] >= PRIORITY["objection"]:
                acts[i] = Act("skip", a.unit, "")
        answered = {acts[i + 1].unit.index for i, a in enumerate(acts[:-1]) if a.kind == "discovery"}
        candidates = [
            (i, a)
            for i, a in enumerate(acts)
            if a.sentence and a.kind != "skip" and not (a.unit.index in answered and PRIORITY[a.kind] < 5)
        ]
        # "The customer agreed" already closes the commitment it accepted.
        candidates = [
            (i, a)
            for i, a in candidates
            if not (a.kind == "acceptance" and i and acts[i - 1].sentence.endswith("the customer agreed."))
        ]
        refusals = [ia for ia in candidates if ia[1].kind == "refusal"]
        if len(refusals) > 1:
            keep = max(refusals, key=lambda ia: (len(ia[1].sentence), -ia[0]))
            candidates = [ia for ia in candidates if ia[1].kind != "refusal" or ia is keep]
        budget = min(MAX_SENTENCES, MIN_SENTENCES + sum(len(u.tokens) for u in part) // WORDS_PER_SENTENCE)
        # A question weighs what its answer weighs ("Asked about the budget, the customer said ...").
        weight = {
            i: max(PRIORITY[a.kind], PRIORITY[acts[i + 1].kind] if a.kind == "discovery" else 0)
            for i, a in enumerate(acts)
        }
        chosen = sorted(candidates, key=lambda ia: (-weight[ia[0]], ia[0]))[:budget]
        informative = [a for i, a in sorted(chosen, key=lambda ia: ia[0]) if weight[i] > 0] or [
            a for _, a in sorted(chosen, key=lambda ia: ia[0])
        ][:2]
        summaries.append(" ".join(a.sentence for a in informative))
    return summaries
