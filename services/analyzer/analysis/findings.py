"""What the built-in engine hears in a call: intent cues, needs, objections and how they were
answered, budget, authority, timeline and next steps, each with the utterance that says it.

Who counts: when the speakers are known (stereo recordings, and mono ones the analyzer
diarized) the customer's utterances give intent and BANT and the agent's give the agent's
behaviour. When they are not (a mono transcript whose speakers could not be separated), every
utterance counts for both (the engine cannot tell who said it, and says so by quoting without a
speaker).

Every cue is in ``lexicon``, one pattern per concern, with why it is there; the rules that
combine them are here, each with its own constant and docstring.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from schemas.analysis import CONCERN_CATEGORIES

from . import lexicon as lx
from .numbers import find_amounts
from .text import Unit, bullets

#: Weight of an agent's utterance in the intent decision (the customer's weighs 1).
AGENT_INTENT_WEIGHT = 0.25
#: Cues of one intent in one utterance add up to at most this.
UNIT_INTENT_CAP = 3.0
#: Below this total, no intent is clear: UNDECIDED.
INTENT_MIN_SCORE = 1.0
#: When the runner-up reaches this share of the winner, the signals are mixed: UNDECIDED.
INTENT_MIXED_RATIO = 0.75
#: How much each handled / unanswered customer objection takes from the INTERESTED score.
HANDLED_OBJECTION_DAMPING = 0.35
MAX_EVIDENCE = 5
_INTENT_ORDER = ("NOT_INTERESTED", "FOLLOW_UP", "INTERESTED")  # tie-break order: the cautious reading first


@dataclass(frozen=True)
class Hit:
    """A cue heard in one utterance (``span`` is a token span of ``unit``)."""

    unit: Unit
    span: tuple[int, int]
    weight: float = 1.0
    text: str = ""
    """What matched, normalised ("by the end of march")."""

    def cite(self) -> str:
        return self.unit.cite(self.span)


@dataclass(frozen=True)
class Objection:
    """A customer turn with at least one concern, and the agent's reply to it."""

    hits: tuple[Hit, ...]
    categories: tuple[str, ...]
    reply: tuple[Unit, ...]
    acknowledged: bool
    answered: bool

    @property
    def handling(self) -> float:
        """0..1: 0.4 for acknowledging the concern, 0.6 for answering it with substance."""
        return 0.4 * self.acknowledged + 0.6 * self.answered


@dataclass(frozen=True)
class Findings:
    units: Sequence[Unit]
    mono: bool
    customer: Sequence[Unit]
    """Utterances that count as the customer's (all of them on mono)."""
    agent: Sequence[Unit]
    """Utterances that count as the agent's (all of them on mono)."""
    duration_s: float
    intent_hits: dict[str, list[Hit]] = field(default_factory=dict)
    needs: list[Hit] = field(default_factory=list)
    objections: list[Objection] = field(default_factory=list)
    budget: list[Hit] = field(default_factory=list)
    authority: list[Hit] = field(default_factory=list)
    timeline: list[Hit] = field(default_factory=list)
    next_steps: list[Hit] = field(default_factory=list)
    """The agent's next-step proposals."""
    customer_next_steps: list[Hit] = field(default_factory=list)
    """The customer's next-step requests (intent cues, for the Next Steps label)."""

    @property
    def concern_categories(self) -> list[str]:
        found = {c for o in self.objections for c in o.categories}
        return [c for c in CONCERN_CATEGORIES if c in found]


def matches(pattern: lx.Pattern, unit: Unit) -> list[tuple[int, int]]:
    """Token spans where ``pattern`` matches ``unit``."""
    return [unit.span_of(m.start(), m.end()) for m in pattern.finditer(unit.norm)]


def first_match(pattern: lx.Pattern, unit: Unit) -> tuple[int, int] | None:
    m = pattern.search(unit.norm)
    return unit.span_of(m.start(), m.end()) if m else None


def negated(unit: Unit, span: tuple[int, int]) -> bool:
    """Whether one of the three tokens before ``span`` negates it."""
    return any(t in lx.NEGATORS for t in unit.tokens[max(0, span[0] - 3) : span[0]])


def _hits(pattern: lx.Pattern, units: Iterable[Unit], *, negatable: bool = False, weight: float = 1.0) -> list[Hit]:
    """The first (non-negated) match of ``pattern`` in each unit."""
    found = []
    for unit in units:
        for m in pattern.finditer(unit.norm):
            span = unit.span_of(m.start(), m.end())
            if negatable and negated(unit, span):
                continue
            found.append(Hit(unit, span, weight, m.group(0)))
            break
    return found


def strongest(hits: Sequence[Hit], limit: int = MAX_EVIDENCE) -> list[Hit]:
    """At most ``limit`` hits, one per utterance, the heaviest (then earliest), in time order."""
    per_unit: dict[int, Hit] = {}
    for hit in hits:
        kept = per_unit.get(hit.unit.index)
        if kept is None or hit.weight > kept.weight:
            per_unit[hit.unit.index] = hit
    chosen = sorted(per_unit.values(), key=lambda h: (-h.weight, h.unit.index))[:limit]
    return sorted(chosen, key=lambda h: h.unit.index)


def turns(units: Sequence[Unit], mono: bool) -> list[list[Unit]]:
    """Runs of consecutive utterances by one speaker (on mono every utterance is its own turn)."""
    result: list[list[Unit]] = []
    for unit in units:
        if result and not mono and result[-1][-1].speaker == unit.speaker:
            result[-1].append(unit)
        else:
            result.append([unit])
    return result


def _intent_hits(f: Findings) -> dict[str, list[Hit]]:
    horizon = max(f.duration_s, f.units[-1].end if f.units else 0.0, 1e-6)
    result: dict[str, list[Hit]] = {}
    accepted = _acceptances(f)
    for intent, cues in lx.INTENT_CUES.items():
        hits: list[Hit] = []
        for unit in f.units:
            speaker_weight = AGENT_INTENT_WEIGHT if unit.speaker == "agent" else 1.0
            # Later words count more: how a call ends says more than how it starts.
            position = 0.75 + 0.5 * min(1.0, unit.start / horizon)
            total = 0.0
            for pattern, weight, negatable in cues:
                for span in matches(pattern, unit):
                    if negatable and negated(unit, span):
                        continue
                    take = min(weight, UNIT_INTENT_CAP - total)
                    if take <= 0:
                        break
                    total += take
                    hits.append(Hit(unit, span, take * speaker_weight * position))
            if unit.index in accepted and accepted[unit.index][1] == intent:
                hits.append(Hit(unit, accepted[unit.index][0], lx.ACCEPTANCE_WEIGHT * position))
        result[intent] = hits
    return result


def step_kind(unit: Unit) -> str:
    """The intent that accepting this proposal signals: INTERESTED for a step towards buying
    (a demo, a proposal, a trial), FOLLOW_UP for a call later or information to read."""
    if lx.BUYING_STEP.search(unit.norm):
        return "INTERESTED"
    return "FOLLOW_UP" if lx.CALLBACK_STEP.search(unit.norm) else "INTERESTED"


def _acceptances(f: Findings) -> dict[int, tuple[tuple[int, int], str]]:
    """Customer utterances that accept a next step the agent proposed just before (within the
    next two utterances): utterance index -> (span of the acceptance, the intent it signals,
    see ``step_kind``). Not on mono, where who proposed and who accepted cannot be told apart."""
    found: dict[int, tuple[tuple[int, int], str]] = {}
    if f.mono:
        return found
    for i, unit in enumerate(f.units):
        if unit.speaker != "agent" or not _is_next_step(unit):
            continue
        for reply in f.units[i + 1 : i + 3]:
            if reply.speaker == "customer":
                span = first_match(lx.ACCEPTANCE, reply)
                if span is not None and not negated(reply, span):
                    found[reply.index] = (span, step_kind(unit))
                break
    return found


def _is_next_step(unit: Unit) -> bool:
    """An agent's concrete next-step proposal (not the reason for the call: "I'm calling to
    follow up on your request" proposes nothing)."""
    m = lx.NEXT_STEP_ACTION.search(unit.norm)
    return m is not None and not negated(unit, unit.span_of(m.start(), m.end())) and not lx.PURPOSE.search(unit.norm)


def _objections(f: Findings) -> list[Objection]:
    found: list[Objection] = []
    all_turns = turns(f.units, f.mono)
    for i, turn in enumerate(all_turns):
        if not f.mono and turn[0].speaker != "customer":
            continue
        hits: list[Hit] = []
        categories: set[str] = set()
        for unit in turn:
            if f.mono and lx.HANDLING_ACK.search(unit.norm):
                continue  # on mono an acknowledgement is most likely the agent's reply
            unit_hits: list[Hit] = []
            for category, pattern in lx.OBJECTION_STRONG.items():
                span = first_match(pattern, unit)
                if span is not None:
                    unit_hits.append(Hit(unit, span, 2.0, category))
                    categories.add(category)
            generic = first_match(lx.OBJECTION_GENERIC, unit)
            if generic is not None:
                worded = [c for c, p in lx.CATEGORY_WORDS.items() if p.search(unit.norm)]
                if not unit_hits:
                    categories.update(worded or ["Other"])
                    unit_hits.append(Hit(unit, generic, 1.0, "generic"))
            hits.extend(strongest(unit_hits, 1))
        if not hits:
            continue
        reply = _reply(all_turns, i, f.mono)
        reply_norm = " ".join(u.norm for u in reply)
        rude = bool(lx.RUDE.search(reply_norm))
        acknowledged = bool(reply) and not rude and bool(lx.HANDLING_ACK.search(reply_norm))
        substance = sum(len(u.stems) for u in reply)
        # A long reply answers the concern only if it is about it (shares its words or its
        # category's words); a pitch that ignores the concern does not.
        concern_stems = {st for h in hits for st in h.unit.stems}
        on_topic = any(st in concern_stems for u in reply for st in u.stems) or any(
            lx.CATEGORY_WORDS[c].search(reply_norm) for c in categories if c in lx.CATEGORY_WORDS
        )
        answered = (
            bool(reply)
            and not rude
            and (bool(lx.HANDLING_RESPONSE.search(reply_norm)) or (substance >= 6 and on_topic))
        )
        found.append(
            Objection(
                tuple(hits), tuple(c for c in CONCERN_CATEGORIES if c in categories), reply, acknowledged, answered
            )
        )
    return found


#: How many of the agent's turns after an objection count as the reply to it: an agent often
#: asks a question first ("What do you like about it?") and answers on the next turn.
REPLY_TURNS = 2


def _reply(all_turns: Sequence[Sequence[Unit]], i: int, mono: bool) -> tuple[Unit, ...]:
    """The agent's reply to the objection in turn ``i``: the first two utterances of each of
    the next ``REPLY_TURNS`` agent turns, stopping at a customer turn with another objection."""
    if mono:
        return tuple(all_turns[i + 1][:2]) if i + 1 < len(all_turns) else ()
    reply: list[Unit] = []
    agent_turns = 0
    for turn in all_turns[i + 1 :]:
        if turn[0].speaker == "agent":
            reply.extend(turn[:2])
            agent_turns += 1
            if agent_turns >= REPLY_TURNS:
                break
        elif any(_objection_cue(u) for u in turn) or not reply:
            break
    return tuple(reply)


def _objection_cue(unit: Unit) -> bool:
    return any(p.search(unit.norm) for p in lx.OBJECTION_STRONG.values()) or bool(
        lx.OBJECTION_GENERIC.search(unit.norm)
    )


def _authority(f: Findings) -> list[Hit]:
    found: list[Hit] = []
    previous: Unit | None = None
    for unit in f.units:
        if unit.speaker != "agent":
            span = first_match(lx.AUTHORITY, unit)
            if span is None:
                role = first_match(lx.ROLES, unit)
                asked = previous is not None and previous.speaker != unit.speaker
                about_deciding = lx.DECISION_WORDS.search(unit.norm) or (
                    asked and previous is not None and lx.DECISION_WORDS.search(previous.norm)
                )
                span = role if role is not None and about_deciding else None
                if span is None and asked and previous is not None and lx.DECISION_WORDS.search(previous.norm):
                    span = first_match(lx.AUTHORITY_SELF, unit)
            if span is not None:
                found.append(Hit(unit, span))
        previous = unit
    return found


def _budget(f: Findings) -> list[Hit]:
    found: list[Hit] = []
    too_expensive = {h.unit.index for o in f.objections if "Pricing" in o.categories for h in o.hits}
    for unit in f.customer:
        cue = first_match(lx.BUDGET, unit)
        amounts = find_amounts(unit.tokens, bare=cue is not None)
        for amount in amounts:
            # An amount the customer objects to bounds the budget from above.
            text = f"under {amount.text}" if unit.index in too_expensive else amount.text
            found.append(Hit(unit, (amount.start, amount.end), 2.0, text))
        if cue is not None and not amounts:
            found.append(Hit(unit, cue, 1.0, ""))
    return found


def _past(unit: Unit, span: tuple[int, int]) -> bool:
    """A time in the past ("last spring", "until last year", "two weeks ago", "we have been with
    them for ten years") is history, not a timeline."""
    before = unit.tokens[max(0, span[0] - 2) : span[0] + 1]
    after = unit.tokens[span[1] : span[1] + 1]
    # "We have been with them for ten years": a duration up to now.
    perfect = "been" in unit.tokens[max(0, span[0] - 6) : span[0]]
    # "Our premium went up a lot this year": something that happened, told in the past tense.
    happened = any(t in _PAST_EVENTS for t in unit.tokens[max(0, span[0] - 6) : span[0]])
    return "last" in before or "ago" in after or "since" in before or perfect or happened


#: Past-tense verbs that report what happened (not "planned", "wanted": those look ahead).
_PAST_EVENTS = frozenset(
    [
        "went",
        "rose",
        "grew",
        "doubled",
        "tripled",
        "increased",
        "jumped",
        "dropped",
        "fell",
        "happened",
        "cost",
        "paid",
        "spent",
        "bought",
        "tried",
        "had",
    ]
)


def analyse(units: Sequence[Unit], duration_s: float) -> Findings:
    """Everything the built-in engine extracts from ``units`` (see the module docstring)."""
    mono = all(u.speaker == "unknown" for u in units)
    customer = [u for u in units if u.speaker != "agent"]
    agent = [u for u in units if u.speaker != "customer"]
    f = Findings(units=units, mono=mono, customer=customer, agent=agent, duration_s=duration_s)
    f.intent_hits.update(_intent_hits(f))
    f.needs.extend(_hits(lx.NEEDS, customer, negatable=True))
    stated = {h.unit.index for h in f.needs}
    f.needs.extend(h for h in _hits(lx.PAIN, customer) if h.unit.index not in stated)
    f.objections.extend(_objections(f))
    f.budget.extend(_budget(f))
    f.authority.extend(_authority(f))
    for unit in customer:
        for m in lx.TIMELINE.finditer(unit.norm):
            # The longest phrase of an utterance is the most informative ("by the end of march").
            span = unit.span_of(m.start(), m.end())
            if _past(unit, span):
                continue
            f.timeline.append(Hit(unit, span, float(len(m.group(0))), unit.words_of(span)))
    f.next_steps.extend(_hits(lx.NEXT_STEP_ACTION, [u for u in agent if _is_next_step(u)], weight=2.0))
    f.next_steps.extend(_hits(lx.NEXT_STEP_MENTION, agent))
    f.customer_next_steps.extend(
        h for h in f.intent_hits.get("INTERESTED", []) if h.unit.speaker != "agent" and h.weight >= 1.0
    )
    return f


# ------------------------------------------------------------------------------------------
# Intent
# ------------------------------------------------------------------------------------------


def intent_scores(f: Findings) -> dict[str, float]:
    """Summed cue weights per intent, INTERESTED reduced by the customer's objections."""
    scores = {intent: sum(h.weight for h in f.intent_hits.get(intent, [])) for intent in _INTENT_ORDER}
    # An objection the customer moved past (interest they showed after raising it) no longer
    # weighs on their interest: "if it doesn't work with Sage ..." - "it does" - "then I'm interested".
    interest_at = [h.unit.index for h in f.intent_hits.get("INTERESTED", []) if h.unit.speaker != "agent"]
    standing = [o for o in f.objections if not any(i > max(h.unit.index for h in o.hits) for i in interest_at)]
    damping = sum(lx.OBJECTION_DAMPING if o.handling < 0.5 else HANDLED_OBJECTION_DAMPING for o in standing)
    scores["INTERESTED"] = max(0.0, scores["INTERESTED"] - damping)
    return scores


def decide_intent(f: Findings) -> tuple[str, str]:
    """The intent and a justification quoting the utterances that drove it.

    The intent with the highest score wins if it reaches ``INTENT_MIN_SCORE`` and the runner-up
    stays below ``INTENT_MIXED_RATIO`` of it; otherwise the call is UNDECIDED.
    """
    scores = intent_scores(f)
    ranked = sorted(_INTENT_ORDER, key=lambda i: (-scores[i], _INTENT_ORDER.index(i)))
    best, second = ranked[0], ranked[1]
    who = "The speakers" if f.mono else "The customer"

    def quotes(intent: str, limit: int = 3) -> str:
        hits = f.intent_hits.get(intent, [])
        # The customer's own words make the case; the agent's only when the customer's are missing.
        hits = [h for h in hits if h.unit.speaker != "agent"] or hits
        return "; ".join(h.cite() for h in strongest(hits, limit))

    lead = {
        "INTERESTED": f"{who} showed interest",
        "NOT_INTERESTED": f"{who} declined",
        "FOLLOW_UP": f"{who} deferred the decision",
    }
    if scores[best] >= INTENT_MIN_SCORE and scores[second] < INTENT_MIXED_RATIO * scores[best]:
        text = f"{lead[best]}: {quotes(best)}."
        unanswered = [o for o in f.objections if o.handling < 0.5]
        if best == "INTERESTED" and unanswered:
            text += f" Open concern: {unanswered[-1].hits[0].cite()}."
        return best, text
    parts: list[str] = []
    for intent in _INTENT_ORDER:
        if scores[intent] >= INTENT_MIN_SCORE / 2 and f.intent_hits.get(intent):
            parts.append(f"{lead[intent].split(' ', 2)[2]} ({quotes(intent, 2)})")
    objections = "; ".join(o.hits[0].cite() for o in f.objections[:2])
    if parts and f.objections:
        parts.append(f"raised objections ({objections})")
    if len(parts) > 1:
        return "UNDECIDED", f"Mixed signals, no clear decision: {who.lower()} " + ", but ".join(parts) + "."
    if f.objections:
        return "UNDECIDED", f"No clear decision: {who.lower()} raised objections ({objections})."
    if parts:
        return "UNDECIDED", f"No clear decision; the only signal was weak: {who.lower()} {parts[0]}."
    last = f.customer[-1] if f.customer else f.units[-1]
    return "UNDECIDED", (
        "There was a conversation but no clear sign of interest, refusal or a request to follow up. "
        f"Last words: {last.cite()}."
    )


# ------------------------------------------------------------------------------------------
# Text of the BANT fields
# ------------------------------------------------------------------------------------------


def needs_text(f: Findings) -> str | None:
    return bullets([h.cite() for h in strongest(f.needs)])


def objection_text(f: Findings) -> str | None:
    items = []
    for o in f.objections[:MAX_EVIDENCE]:
        items.append(f"{o.hits[0].cite()} ({', '.join(o.categories)})")
    return bullets(items)


def objection_handling_text(f: Findings) -> str | None:
    if not f.objections:
        return None
    items = []
    for o in f.objections[:MAX_EVIDENCE]:
        concern = o.hits[0].unit.quote(o.hits[0].span, 12)
        if not o.reply:
            items.append(f"The concern {concern} was not answered.")
            continue
        how = {
            (True, True): "acknowledged and answered",
            (False, True): "answered without acknowledging",
            (True, False): "acknowledged but did not answer",
            (False, False): "did not really address",
        }[(o.acknowledged, o.answered)]
        replier = "the agent" if not f.mono else "the reply"
        items.append(f"To {concern}, {replier} {how}: {o.reply[0].cite()}")
    return bullets(items)


def budget_text(f: Findings) -> str | None:
    items = [f"{h.text} ({h.cite()})" if h.text else h.cite() for h in strongest(f.budget)]
    return bullets(items)


def authority_text(f: Findings) -> str | None:
    return bullets([h.cite() for h in strongest(f.authority)])


def timeline_text(f: Findings) -> str | None:
    phrases: dict[int, list[str]] = {}
    for hit in f.timeline:
        phrases.setdefault(hit.unit.index, []).append(hit.text)
    return bullets([f"{', '.join(dict.fromkeys(phrases[h.unit.index]))} ({h.cite()})" for h in strongest(f.timeline)])


def next_steps_text(f: Findings) -> str | None:
    return bullets([h.cite() for h in strongest([*f.next_steps, *f.customer_next_steps])])
