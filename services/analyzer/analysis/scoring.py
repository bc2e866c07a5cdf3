"""Quality parameters: each scored 0..max_score with a justification citing the call and a
suggestion addressed to the agent.

Every scorer returns a fraction in 0..1; ``inference_score`` is that fraction of ``max_score``
rounded half up to an integer. The default rubric's parameters have their own scorers
(``BUILTIN_SCORERS``: what each counts is in its docstring); any other parameter is scored by
how much of its description the agent's words cover (``score_custom``).

On mono recordings the speakers cannot be told apart, so everything said counts as the agent's
and each justification says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from schemas.analysis import QualityItem, RubricParameter

from . import lexicon as lx
from .findings import Findings, Hit, first_match, negated, turns
from .text import STOPWORDS, Unit, content_stems, normalise, stem, stems_match

#: The opening, for Setting Context and the greeting: the agent's first two turns, within
#: this many seconds of the start.
OPENING_S = 120.0
#: Needs Discovery: this many question points earn full marks. An open question is worth 1
#: ("How many vans do you run?", "Who maintains the site?"), a closed one about the customer 0.75
#: ("Have you had any problems recently?"), any other closed question 0.4: two real questions
#: make half marks, three full marks.
DISCOVERY_FULL = 3.0
#: Product Pitch: a statement with this many content words describes the product in detail.
PITCH_DETAIL_STEMS = 8
#: Custom parameters: covering this share of the description's key terms earns full marks.
CUSTOM_FULL_COVERAGE = 0.6
MONO_NOTE = " (Mono recording: the speakers could not be told apart, so all speech counted as the agent's.)"


@dataclass(frozen=True)
class Assessment:
    fraction: float
    justification: str
    suggestion: str


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _opening(f: Findings) -> list[Unit]:
    if f.mono:
        return [u for u in f.units[:3] if u.start <= OPENING_S]
    agent_turns = [t for t in turns(f.units, mono=False) if t[0].speaker == "agent"]
    return [u for t in agent_turns[:2] for u in t if u.start <= OPENING_S]


def _closing(f: Findings) -> list[Unit]:
    if f.mono:
        return list(f.units[-3:])
    agent_turns = [t for t in turns(f.units, mono=False) if t[0].speaker == "agent"]
    return [u for t in agent_turns[-2:] for u in t]


def _find(pattern: lx.Pattern, units: Sequence[Unit], *, negatable: bool = False) -> Hit | None:
    for unit in units:
        for m in pattern.finditer(unit.norm):
            span = unit.span_of(m.start(), m.end())
            if negatable and negated(unit, span):
                continue
            return Hit(unit, span, 1.0, m.group(0))
    return None


# ------------------------------------------------------------------------------------------
# The default rubric
# ------------------------------------------------------------------------------------------


def score_setting_context(f: Findings) -> Assessment:
    """Introduction 0.3, purpose of the call 0.5 (a statement of what the company does earns
    0.1: it says who is calling, not why), an agenda or a check that the customer agrees 0.2,
    all within the opening."""
    opening = _opening(f)
    intro = _find(lx.INTRODUCTION, opening)
    purpose = _find(lx.PURPOSE, opening)
    value = None if purpose else _find(lx.VALUE_STATEMENT, opening)
    structure = _find(lx.AGENDA_STRUCTURE, opening) if (purpose or value) else None
    fraction = 0.3 * (intro is not None) + (0.5 if purpose else 0.1 if value else 0.0) + 0.2 * (structure is not None)
    found: list[str] = []
    missing: list[str] = []
    if intro is None:
        missing.append("an introduction")
    else:
        found.append("introduced themselves")
    if purpose:
        found.append("stated the purpose of the call")
    elif value:
        found.append("said what the company does but not why they were calling")
        missing.append("the reason for the call")
    else:
        missing.append("the reason for the call")
    if structure:
        found.append("outlined the agenda or checked it with the customer")
    else:
        missing.append("an agenda")
    evidence: dict[int, Hit] = {}
    for hit in (intro, purpose or value, structure):
        if hit is not None:
            evidence.setdefault(hit.unit.index, hit)
    cites = "; ".join(h.cite() for _, h in sorted(evidence.items()))
    text = (
        f"In the opening the agent {_join(found)}: {cites}."
        if found
        else "The agent's opening did not set any context."
    )
    if missing:
        text += f" Missing from the opening: {_join(missing)}."
    window_end = (opening[-1].end if opening else 0.0) + 30.0
    asked = _find(lx.CONTEXT_MISSING, [u for u in f.customer if u.start <= window_end and u.speaker != "agent"])
    if asked and not purpose:
        text += f" The customer had to ask: {asked.cite()}."
    if fraction >= 0.8:
        suggestion = (
            "You set the context well. Keep opening every call with your name, the reason for the call and a short "
            "agenda, and check that the customer agrees with it."
        )
    else:
        suggestion = (
            f"You did not give {_join(missing)} at the start. Open with your name and company, then say why you are "
            'calling and what the call will cover, for example: "The reason for my call is ... First ..., then ...; '
            'does that work for you?"'
        )
    return Assessment(fraction, text, suggestion)


def score_needs_discovery(f: Findings) -> Assessment:
    """Question points (see ``DISCOVERY_FULL``), permission and check-in questions excluded."""
    points = 0.0
    asked: list[Hit] = []
    open_count = 0
    for unit in f.agent:
        norm = lx.NOT_DISCOVERY.sub(" ", unit.norm)
        m = lx.OPEN_QUESTION.search(norm)
        about_customer = bool(re.search(r"\b(?:you|your|yours|youre)\b", norm))
        if m:
            points += 1.0
            open_count += 1
        else:
            m = lx.CLOSED_QUESTION.search(norm)
            if not m:
                continue
            points += 0.75 if about_customer else 0.4
        # The span is looked up again in the unit's own text (the substitution kept offsets
        # only approximately).
        span = first_match(lx.OPEN_QUESTION, unit) or first_match(lx.CLOSED_QUESTION, unit)
        asked.append(Hit(unit, span or (0, 0)))
    fraction = min(1.0, points / DISCOVERY_FULL)
    if asked:
        examples = "; ".join(h.cite() for h in asked[:3])
        text = f"The agent asked {len(asked)} discovery question(s), {open_count} of them open: {examples}."
    else:
        text = "The agent asked no questions about the customer's situation, goals or problems."
    if fraction >= 1.0:
        suggestion = (
            "You explored the customer's situation with open questions. Keep following up on what the customer says "
            "before you present the product."
        )
    else:
        suggestion = (
            f"You asked {'only ' if asked else ''}{len(asked)} discovery question(s). Before presenting the "
            "product, ask open questions about the customer's situation, goals and problems "
            '("How do you handle ... today?", "What is the biggest challenge with ...?") and let the customer talk.'
        )
    return Assessment(fraction, text, suggestion)


def score_product_pitch(f: Findings) -> Assessment:
    """Presenting the product 0.4 (an agent statement of what it does, ``CAPABILITY``, or
    naming it, ``PITCH``); substance 0.2 (a second such statement, one saying what the customer
    gains, ``BENEFIT``, one of ``PITCH_DETAIL_STEMS`` content words, or two things the product
    does in one statement); 0.4 when a statement
    made after the customer described a need takes up words of that need. The reason for the
    call ("I'm calling about our platform") announces a pitch, it is not one."""
    pitch: list[Hit] = []
    benefit: Hit | None = None
    for unit in f.agent:
        if lx.PURPOSE.search(unit.norm):
            continue
        hit = _find(lx.CAPABILITY, [unit]) or _find(lx.PITCH, [unit])
        if hit is None:
            continue
        pitch.append(hit)
        if benefit is None:
            benefit = _find(lx.BENEFIT, [unit])
    # A statement with substance: long, or saying two things the product does ("our sites take
    # bookings, and we look after them for you").
    detailed = any(
        len(h.unit.stems) >= PITCH_DETAIL_STEMS
        or len({m.group(0) for p in (lx.CAPABILITY, lx.PITCH) for m in p.finditer(h.unit.norm)}) >= 2
        for h in pitch
    )
    base = (0.4 if pitch else 0.0) + (0.2 if len(pitch) >= 2 or (pitch and (benefit or detailed)) else 0.0)
    need_units = [h.unit for h in f.needs]
    need_stems = {s for u in need_units for s in u.stems}
    first_need = min((u.index for u in need_units), default=None)
    linked: list[tuple[Hit, list[str]]] = []
    if first_need is not None:
        for h in pitch:
            if h.unit.index <= first_need:
                continue
            shared = list(
                dict.fromkeys(
                    t
                    for t in h.unit.tokens
                    if t not in STOPWORDS and len(t) > 1 and any(stems_match(stem(t), n) for n in need_stems)
                )
            )
            if shared:
                linked.append((h, shared))
    link = 0.4 if linked else 0.0
    fraction = min(1.0, base + link)
    if pitch:
        text = "The agent presented the product: " + "; ".join(h.cite() for h in pitch[:3]) + "."
        if linked:
            h, shared = linked[0]
            text += f" The pitch took up the customer's needs ({', '.join(shared[:4])}): {h.cite()}."
        elif first_need is not None:
            text += f" It was not tied to the need the customer described: {f.needs[0].cite()}."
        else:
            text += " The customer described no need to tie it to."
    else:
        text = "The agent did not present the product or its benefits."
    if fraction >= 0.8:
        suggestion = (
            "You tied the product to what the customer told you. Keep presenting one benefit per need, "
            "in the customer's own words."
        )
    elif pitch:
        suggestion = (
            "You described the product but not how it solves the customer's problem. Repeat the need the customer "
            'described and link one feature to it: "You said ...; with ... you can ..."'
        )
    else:
        suggestion = (
            "You did not present the product. Once you know the customer's needs, explain the two or three features "
            "that answer them and what the customer gains."
        )
    return Assessment(fraction, text, suggestion)


def score_objection_handling(f: Findings) -> Assessment:
    """The mean over the customer's objections of 0.4 for acknowledging and 0.6 for answering
    it. Without any objection there is nothing to fault: full marks (so is_fatal never fails a
    call for an objection that was not raised)."""
    if not f.objections:
        return Assessment(
            1.0,
            "The customer raised no objection or concern, so there was nothing to handle (full marks).",
            'No objection came up in this call. When you hear one, acknowledge it first ("I understand that ...") '
            "and then answer it with a relevant fact, a customer example or an option.",
        )
    fraction = sum(o.handling for o in f.objections) / len(f.objections)
    lines = []
    for o in f.objections[:4]:
        concern = o.hits[0].cite()
        if not o.reply:
            lines.append(f"{concern} was left unanswered")
            continue
        how = {
            (True, True): "acknowledged and answered",
            (False, True): "answered without being acknowledged",
            (True, False): "acknowledged but not answered",
            (False, False): "not addressed",
        }[(o.acknowledged, o.answered)]
        lines.append(f"{concern} was {how} ({o.reply[0].cite()})")
    text = f"{len(f.objections)} objection(s): " + "; ".join(lines) + "."
    unanswered = [o for o in f.objections if not o.answered]
    unacknowledged = [o for o in f.objections if o.answered and not o.acknowledged]
    if unanswered:
        example = unanswered[0].hits[0].unit.quote(unanswered[0].hits[0].span, 12)
        suggestion = (
            f"You left {len(unanswered)} concern(s) without an answer, such as {example}. Acknowledge each concern "
            '("I understand that ...") and answer it: a relevant fact, a customer example, or an option such as a '
            "smaller plan or a trial; then check that it is resolved."
        )
    elif unacknowledged:
        suggestion = (
            "You answered the concerns but went straight to your answer. Acknowledge the concern first so the customer "
            "feels heard, then answer it."
        )
    else:
        suggestion = (
            "You acknowledged and answered every concern. Keep checking that your answer resolved it "
            '("Does that address your concern?").'
        )
    return Assessment(fraction, text, suggestion)


def score_next_steps(f: Findings) -> Assessment:
    """A concrete action proposed by the agent 0.5, a day or time for it 0.3, the customer
    agreeing right after 0.2; the best proposal counts. A step the customer asked for ("send me
    a quote", "call me back next month") that the agent took on counts the same, agreed by
    construction. Merely mentioning "next steps" in the second half of the call earns 0.25."""
    best: tuple[float, Hit, Unit | None, Unit | None] | None = None
    requested: Hit | None = None
    for hit, reply in _requested_steps(f):
        when = next((u for u in (hit.unit, reply) if lx.CONCRETE_TIME.search(u.norm)), None)
        score = 0.7 + 0.3 * (when is not None)
        if best is None or score > best[0]:
            best, requested = (score, Hit(reply, (0, len(reply.tokens)), 2.0), when, None), hit
    horizon = max(f.duration_s, f.units[-1].end)
    for hit in f.next_steps:
        unit = hit.unit
        if hit.weight < 2.0:
            # Merely saying "next steps" counts only towards the end (not in an agenda), and
            # earns no credit for a time or an agreement: there was no concrete step to agree to.
            if unit.start >= horizon / 2 and (best is None or best[0] < 0.25):
                best = (0.25, hit, None, None)
            continue
        base = 0.5
        later = [u for u in f.units if u.index > unit.index]
        when_unit = unit if lx.CONCRETE_TIME.search(unit.norm) else None
        if when_unit is None:
            when_unit = next(
                (u for u in later[:2] if u.speaker != "customer" and lx.CONCRETE_TIME.search(u.norm)), None
            )
        agreed = next(
            (
                u
                for u in later[:2]
                if u.speaker != "agent" and lx.AGREEMENT.search(u.norm) and not lx.NOT_DISCOVERY.search(u.norm)
            ),
            None,
        )
        score = base + 0.3 * (when_unit is not None) + 0.2 * (agreed is not None)
        if best is None or score > best[0]:
            best, requested = (score, hit, when_unit, agreed), None
    if best is None:
        return Assessment(
            0.0,
            "The agent proposed no next step (no meeting, demo, trial, proposal or follow-up).",
            "You ended the call without a next step. Before closing, propose one concrete action with a date "
            '("Shall we book a demo on Tuesday at ten?") and get the customer\'s agreement.',
        )
    score, hit, when_unit, agreed = best
    if requested is not None:
        text = f"The customer asked for a next step, {requested.cite()}, and the agent took it on: {hit.cite()}."
    else:
        text = f"The agent proposed: {hit.cite()}."
    if when_unit is not None and when_unit not in (hit.unit, requested.unit if requested else None):
        text += f" With a time: {when_unit.cite()}."
    elif when_unit is None:
        text += " No day or time was set."
    if requested is None:
        text += f" The customer agreed: {agreed.cite()}." if agreed else " The customer's agreement was not heard."
        agreed_ok = agreed is not None
    else:
        agreed_ok = True
    if score >= 0.8:
        suggestion = (
            "You closed with a concrete, agreed next step. Keep confirming it at the end of every call and "
            "send an invitation right after."
        )
    else:
        gaps = []
        if hit.weight < 2.0:
            gaps.append("name a concrete action (a demo, a meeting, a trial)")
        if when_unit is None:
            gaps.append("set a day and time")
        if not agreed_ok:
            gaps.append("get the customer's explicit agreement")
        suggestion = f"You left the next step open. Next time, {_join(gaps)}."
    return Assessment(min(1.0, score), text, suggestion)


def _requested_steps(f: Findings) -> list[tuple[Hit, Unit]]:
    """Steps the customer asked for (a demo, a quote, a call back) that the agent's next
    utterance took on ("Of course, I will ..."): (the request, the agent's reply)."""
    if f.mono:
        return []
    asked = [
        h
        for intent in ("INTERESTED", "FOLLOW_UP")
        for h in f.intent_hits.get(intent, [])
        if h.unit.speaker == "customer" and lx.STEP_REQUEST.search(h.unit.norm)
    ]
    found = []
    for hit in asked:
        reply = next((u for u in f.units[hit.unit.index + 1 : hit.unit.index + 3] if u.speaker == "agent"), None)
        if reply is not None and lx.AGENT_AGREES.search(reply.norm):
            found.append((hit, reply))
    return found


def score_professionalism(f: Findings) -> Assessment:
    """0.4 for staying civil (no rude word), then 0.15 each for a greeting in the opening,
    thanks, a polite closing and courtesy words. Each rude word from the agent takes 0.5 and the
    civility share: an agent who is curt but civil scores 4, a courteous one 10, a rude one 0-2."""
    greeting = _find(lx.GREETING, _opening(f))
    thanks = _find(lx.THANKS, f.agent)
    closing = _find(lx.CLOSING, _closing(f)) or _find(lx.THANKS, _closing(f))
    courtesy = _find(lx.COURTESY, f.agent)
    rude = [h for h in (_find(lx.RUDE, [u]) for u in f.agent) if h is not None]
    parts = {
        "a greeting": greeting,
        "thanks": thanks,
        "a polite closing": closing,
        "courtesy words": courtesy,
    }
    civil = 0.0 if rude else 0.4
    fraction = max(0.0, civil + 0.15 * sum(h is not None for h in parts.values()) - 0.5 * len(rude))
    found = [f"{name} ({hit.cite()})" for name, hit in parts.items() if hit is not None]
    missing = [name for name, hit in parts.items() if hit is None]
    text = (
        f"Heard from the agent: {_join(found)}."
        if found
        else "No greeting, thanks or courtesy was heard from the agent."
    )
    if missing:
        text += f" Not heard: {_join(missing)}."
    if rude:
        text += " Rude words: " + "; ".join(h.cite() for h in rude[:3]) + "."
    if rude:
        suggestion = "You used words the customer may find rude. Stay courteous even when the customer is difficult."
    elif missing:
        suggestion = (
            f"You missed {_join(missing)}. Greet the customer, thank them for their time and close the call politely."
        )
    else:
        suggestion = "You were courteous throughout. Keep greeting, thanking and closing every call this way."
    return Assessment(fraction, text, suggestion)


def _canonical(name: str) -> str:
    return " ".join(normalise(name).split())


BUILTIN_SCORERS: Mapping[str, Callable[[Findings], Assessment]] = {
    "setting context": score_setting_context,
    "context setting": score_setting_context,
    "needs discovery": score_needs_discovery,
    "need discovery": score_needs_discovery,
    "discovery": score_needs_discovery,
    "product pitch": score_product_pitch,
    "pitch": score_product_pitch,
    "objection handling": score_objection_handling,
    "handling objections": score_objection_handling,
    "next steps": score_next_steps,
    "next step": score_next_steps,
    "professionalism": score_professionalism,
    "courtesy": score_professionalism,
    "politeness": score_professionalism,
}

# Words every rubric description uses; they say nothing about what to listen for.
_RUBRIC_TEXT = """agent agents customer customers client clients prospect prospects call calls salesperson
seller rep should must make sure ensure properly proper clear clearly always each every use using during whole
conversation able"""
_RUBRIC_WORDS = frozenset(content_stems(_RUBRIC_TEXT.split()))


def score_custom(parameter: RubricParameter, f: Findings) -> Assessment:
    """Coverage of the key terms of the parameter's name and description (stemmed, rubric
    boilerplate removed) by the agent's words; ``CUSTOM_FULL_COVERAGE`` earns full marks."""
    source = normalise(f"{parameter.parameter_name} {parameter.description}").split()
    spoken: dict[str, str] = {}
    for token in source:
        if len(token) > 2 and not token.isdigit():
            s = stem(token)
            if s not in _RUBRIC_WORDS and token not in STOPWORDS:
                spoken.setdefault(s, token)
    keywords = list(spoken)
    if not keywords:
        return Assessment(
            0.0,
            "The parameter's description names nothing specific to listen for, so it could not be assessed.",
            "Ask your manager what this parameter expects, so it can be checked in your calls.",
        )
    agent_stems = {s for u in f.agent for s in u.stems}
    matched = [k for k in keywords if any(stems_match(k, s) for s in agent_stems)]
    fraction = min(1.0, len(matched) / len(keywords) / CUSTOM_FULL_COVERAGE)

    def relevance(unit: Unit) -> int:
        return sum(1 for k in matched if any(stems_match(k, s) for s in unit.stems))

    evidence = sorted((u for u in f.agent if relevance(u)), key=lambda u: (-relevance(u), u.index))[:2]
    missing = [spoken[k] for k in keywords if k not in matched]
    text = (
        f"Judged by how much of the parameter's description the agent's words cover: {len(matched)} of "
        f"{len(keywords)} key terms heard"
    )
    text += f" ({', '.join(spoken[k] for k in matched)})" if matched else ""
    if evidence:
        text += ", e.g. " + "; ".join(u.cite() for u in sorted(evidence, key=lambda u: u.index))
    text += "."
    if missing:
        text += f" Not heard: {', '.join(missing[:8])}."
    if fraction >= 1.0:
        suggestion = f'You covered this point ("{parameter.description}"). Keep doing so in every call.'
    else:
        suggestion = (
            f'Next time, follow this point of the rubric: "{parameter.description}" In particular, cover '
            f"{_join(missing[:5])}."
        )
    return Assessment(fraction, text, suggestion)


def score_parameter(parameter: RubricParameter, f: Findings) -> QualityItem:
    """One rubric parameter, scored (see the module docstring)."""
    scorer = BUILTIN_SCORERS.get(_canonical(parameter.parameter_name))
    assessment = scorer(f) if scorer is not None else score_custom(parameter, f)
    fraction = min(1.0, max(0.0, assessment.fraction))
    # Half up, not Python's half-to-even: 0.55 of 10 is 6, as a reader expects.
    inference = math.floor(fraction * parameter.max_score + 0.5 + 1e-9)
    justification = assessment.justification + (MONO_NOTE if f.mono else "")
    return QualityItem(
        justification=justification,
        suggestion=assessment.suggestion,
        parameter_name=parameter.parameter_name,
        inference_score=float(inference),
        parameter_score=float(parameter.max_score),
        is_fatal=parameter.is_fatal,
    )
