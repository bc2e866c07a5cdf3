"""PII redaction (services/analyzer/redaction.py): random valid card numbers, phone numbers and
emails rendered as a person would say or write them must be masked; numbers that are not PII
(prices, dates, times, years, quantities, percentages, order ids failing Luhn) must not be."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.analysis import (
    Bant,
    CallAnalysis,
    Chapter,
    Qualification,
    QualityItem,
    Redaction,
    RedactionPattern,
    TranscriptSegment,
)
from services.analyzer.redaction import MAX_PATTERN_TIMEOUTS, Redactor

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FILLERS = ["uh", "um", ",", "er"]
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def luhn_complete(body: str) -> str:
    """``body`` with the check digit that makes it Luhn-valid."""
    for check in "0123456789":
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def luhn_ok(digits: str) -> bool:
    return luhn_complete(digits[:-1]) == digits


def say_digits(digits: str, rnd: random.Random, *, fillers: bool = True) -> str:
    """Digits as a person reads them: word by word, "oh" or "zero", "double"/"triple" for
    repeats, sometimes a written digit, hesitations between groups."""
    out: list[str] = []
    i = 0
    while i < len(digits):
        d = digits[i]
        same = 1
        while i + same < len(digits) and digits[i + same] == d and same < 3:
            same += 1
        if same >= 2 and rnd.random() < 0.5:
            word = "oh" if d == "0" and rnd.random() < 0.5 else WORDS[int(d)]
            out.append(("double " if same == 2 else "triple ") + word)
            i += same
        else:
            choice = rnd.random()
            if d == "0":
                out.append(rnd.choice(["oh", "zero", "o"]))
            elif choice < 0.1:
                out.append(d)
            else:
                out.append(WORDS[int(d)])
            i += 1
        if fillers and i % 4 == 0 and i < len(digits) and rnd.random() < 0.3:
            out.append(rnd.choice(FILLERS))
    return " ".join(out).replace(" ,", ",")


def write_grouped(digits: str, rnd: random.Random) -> str:
    sep = rnd.choice([" ", "-", ""])
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))


cards = st.builds(
    lambda prefix, length, rest: luhn_complete((prefix + rest)[: length - 1]),
    st.sampled_from(["4", "51", "55", "34", "37", "6011", "35"]),
    st.sampled_from([13, 15, 16, 16, 16, 19]),
    st.text(alphabet="0123456789", min_size=20, max_size=20),
)

LEADS = ["my card number is", "sure it's", "the card is", "", "ok so", "yeah the long number on the front is"]
TAILS = ["", "thanks", "and the expiry is twelve twenty six", "is that right"]


def redactor(**kwargs: object) -> Redactor:
    return Redactor.from_config(Redaction(enabled=True, **kwargs))  # type: ignore[arg-type]


@PROPERTY
@given(cards, st.integers(0, 2**32), st.sampled_from(LEADS), st.sampled_from(TAILS))
def test_spoken_card_numbers_are_masked(card: str, seed: int, lead: str, tail: str) -> None:
    rnd = random.Random(seed)
    spoken = say_digits(card, rnd)
    result = redactor().redact(f"{lead} {spoken} {tail}".strip())
    assert [s.kind for s in result.spans] == ["card_number"], (spoken, result)
    assert "[CARD]" in result.text
    assert not any(w in result.text.split() for w in ("oh", "double", "triple")) or "oh" in tail


@PROPERTY
@given(cards, st.integers(0, 2**32))
def test_written_card_numbers_are_masked(card: str, seed: int) -> None:
    written = write_grouped(card, random.Random(seed))
    result = redactor().redact(f"Card: {written}, exp 12/26.")
    assert result.text == "Card: [CARD], exp 12/26.", written


@PROPERTY
@given(cards, st.integers(0, 2**32))
def test_a_card_read_out_over_several_segments_is_one_card(card: str, seed: int) -> None:
    rnd = random.Random(seed)
    pieces = [say_digits(card[i : i + 4], rnd, fillers=False) for i in range(0, len(card), 4)]
    segments = [
        TranscriptSegment(speaker="customer", start=float(i), end=i + 0.9, text=p) for i, p in enumerate(pieces)
    ]
    segments.insert(2, TranscriptSegment(speaker="agent", start=1.95, end=1.96, text="mhm"))
    r = redactor()
    masked = r.redact_segments(segments)
    assert r.counts["card_number"] >= 1
    digits_left = [s.text for s in masked if s.speaker == "customer" and s.text != "[CARD]"]
    # Pieces on both sides of the agent's "mhm" are read as separate texts; none keeps digits.
    assert all(len(p.split()) < 7 for p in digits_left)
    assert masked[2].text == "mhm"


@PROPERTY
@given(cards, st.integers(0, 9), st.booleans())
def test_luhn_invalid_long_numbers_are_not_cards(card: str, delta: int, spoken: bool) -> None:
    wrong = card[:-1] + str((int(card[-1]) + 1 + delta % 9) % 10)
    assert not luhn_ok(wrong)
    said = say_digits(wrong, random.Random(delta), fillers=False) if spoken else " ".join(wrong)
    result = redactor().redact(f"the number is {said}")
    kinds = [s.kind for s in result.spans]
    if len(wrong) in (16, 17):
        # Order ids and tracking numbers: longer than any phone number, not a card.
        assert kinds == []
    elif len(wrong) < 16:
        # 13-15 digits: a long international number, or a misheard card: masked either way.
        assert kinds == ["phone_number"]
    else:
        assert "phone_number" not in kinds


@PROPERTY
@given(cards.filter(lambda c: len(c) in (15, 16)), st.integers(100, 9999), st.integers(0, 2**32))
def test_a_card_said_with_its_security_code_is_still_masked(card: str, code: int, seed: int) -> None:
    rnd = random.Random(seed)
    text = f"it's {say_digits(card, rnd, fillers=False)} {say_digits(str(code), rnd, fillers=False)}"
    assert [s.kind for s in redactor().redact(text).spans] == ["card_number"], text


phones = st.builds(
    lambda area, exchange, line: (area, exchange, line),
    st.integers(200, 999),
    st.integers(200, 999),
    st.integers(0, 9999),
)


@PROPERTY
@given(phones, st.integers(0, 2**32))
def test_phone_numbers_in_their_usual_forms_are_masked(parts: tuple[int, int, int], seed: int) -> None:
    rnd = random.Random(seed)
    a, e, n = parts
    line = f"{n:04d}"
    forms = [
        f"({a}) {e}-{line}",
        f"{a}-{e}-{line}",
        f"{a}.{e}.{line}",
        f"+1 {a} {e} {line}",
        f"+1-{a}-{e}-{line}",
        f"{a}{e}{line}",
        say_digits(f"{a}{e}{line}", rnd),
        f"plus one {say_digits(f'{a}{e}{line}', rnd)}",
        f"{say_digits(str(a), rnd, fillers=False)}, {say_digits(str(e), rnd, fillers=False)}, "
        f"{say_digits(line, rnd, fillers=False)}",
    ]
    form = rnd.choice(forms)
    result = redactor().redact(f"you can reach me on {form} after five")
    assert result.text == "you can reach me on [PHONE] after five", form


def test_recogniser_homophones_count_as_digits_only_between_digits() -> None:
    misheard = "it's five five nine for three five nine nine one seven three seven one two six three"
    assert redactor().redact(misheard).text == "it's [CARD]"
    assert redactor().redact("call five five five to one two three four").text == "call [PHONE]"
    for text in ("two to three weeks for one or two teams", "we need it for two to three days"):
        assert redactor().redact(text).text == text


@pytest.mark.parametrize(
    "text",
    [
        "call me on +44 20 7946 0958 tomorrow",
        "my mobile is 07700 900123",
        "it's five five five, one two three, four five six seven",
        "one eight hundred five five five oh one nine nine",
        "the number is double five five triple one two three four",
        "my cell is 555 1234",
    ],
)
def test_phone_examples(text: str) -> None:
    assert [s.kind for s in redactor().redact(text).spans] == ["phone_number"], text


LOCALS = ["john", "j", "sarah_jones", "mike.o.brien", "anna-lee", "k.smith87", "sales", "bob+crm"]
DOMAINS = ["acme.com", "gmail.com", "acme-corp.co.uk", "mail.example.org", "startup.io"]


def say_email(local: str, domain: str, rnd: random.Random) -> str:
    names = {".": "dot", "_": "underscore", "-": rnd.choice(["dash", "hyphen"]), "+": "plus"}
    out = local
    for sign, name in names.items():
        out = out.replace(sign, f" {name} ")
    out = out.replace("87", " eighty seven")
    dom = domain.replace(".", " dot ").replace("-", f" {rnd.choice(['dash', 'hyphen'])} ")
    return " ".join(f"{out} at {dom}".split())


@PROPERTY
@given(st.sampled_from(LOCALS), st.sampled_from(DOMAINS), st.integers(0, 2**32), st.booleans())
def test_emails_spoken_and_written_are_masked(local: str, domain: str, seed: int, spoken: bool) -> None:
    rnd = random.Random(seed)
    email = say_email(local, domain, rnd) if spoken else f"{local}@{domain}"
    lead = rnd.choice(["my email is", "sure it's", "send it to", "you can email me at", "yeah"])
    result = redactor().redact(f"{lead} {email} thanks")
    assert result.text == f"{lead} [EMAIL] thanks", email


@pytest.mark.parametrize(
    "text",
    [
        "j smith at gmail dot com",
        "it's john dot smith at acme dot co dot uk",
        "Email me at J.Smith@Acme.co.uk.",
        "j o h n at acme dot com",
        "sarah underscore jones eighty seven at yahoo dot com",
    ],
)
def test_email_examples(text: str) -> None:
    assert [s.kind for s in redactor().redact(text).spans] == ["email"], text


NOT_PII = [
    "it's $1,200 a month for the team",
    "twelve hundred dollars a month",
    "we have 1,500 seats and growth of 15 percent",
    "fifteen percent off if you sign by march third",
    "in twenty twenty four we doubled to two hundred and fifty agents",
    "let's talk at 3:30 on 12/03/2024",
    "the meeting is on 2024-03-12 at 10:45",
    "between 2019 and 2023 we grew",
    "we make about forty thousand calls a month",
    "one or two people, maybe a couple",
    "our office is at 1600 amphitheatre parkway, zip 94043",
    "order number 4 5 6 7 8 9 1 2 shipped",
    "your ticket is 88123456",
    "the invoice 2024 0012 7788 was paid",
    "price is 49.99 per user",
    "version 3.14.15 is out",
    "three to five days, seven to ten business days",
    "we need 10 licenses at $99 each",
    "visit us at acme dot com",
    "i work at acme dot com",
    "nineteen ninety nine was the year",
    "we spent 2500000 dollars",
    "at nine thirty or ten fifteen",
]


@pytest.mark.parametrize("text", NOT_PII)
def test_numbers_that_are_not_pii_are_kept(text: str) -> None:
    result = redactor().redact(text)
    assert result.text == text, result.spans


def test_entities_can_be_switched_off() -> None:
    text = "card 4111 1111 1111 1111, phone 555 123 4567, email a@b.com"
    only_email = redactor(entities=["email"]).redact(text)
    assert only_email.text == "card 4111 1111 1111 1111, phone 555 123 4567, email [EMAIL]"
    only_card = redactor(entities=["card_number"]).redact(text)
    assert only_card.text == "card [CARD], phone 555 123 4567, email a@b.com"


def test_tenant_patterns_are_masked_case_insensitively_and_overlaps_merge() -> None:
    r = redactor(patterns=[RedactionPattern(name="account_id", regex=r"acct-\d{6}")])
    result = r.redact("my account is ACCT-123456 and email bob@x.io")
    assert result.text == "my account is [ACCOUNT_ID] and email [EMAIL]"
    assert r.counts == {"pattern": 1, "email": 1}
    # A pattern overlapping a built-in span masks the union, named after the higher priority.
    r2 = redactor(patterns=[RedactionPattern(name="tail", regex=r"4567 please")])
    assert r2.redact("call 555 123 4567 please").text == "call [TAIL]"


def test_a_pathological_pattern_times_out_without_stalling_the_call() -> None:
    r = Redactor.from_config(
        Redaction(enabled=True, patterns=[RedactionPattern(name="evil", regex=r"(a|aa)+$")]), pattern_timeout_s=0.02
    )
    text = "a" * 40 + "b card 4111 1111 1111 1111"
    started = time.perf_counter()
    results = [r.redact(text) for _ in range(20)]
    elapsed = time.perf_counter() - started
    assert all(res.text.endswith("card [CARD]") for res in results)
    assert r.timeouts == MAX_PATTERN_TIMEOUTS  # then skipped for the rest of the call
    assert elapsed < 2.0


def test_the_result_model_is_walked_and_literals_kept() -> None:
    analysis = CallAnalysis(
        intent="INTERESTED",
        intent_justification="Customer gave card 4111 1111 1111 1111 to pay.",
        quality_score=80,
        summary=[Chapter(chapter_name="Payment", chapter_summary="Email j.doe@acme.com, phone 555 123 4567.")],
        bant=Bant(needs="reach them at five five five one two three four", budget="$1,200 a month"),
        qualification=[Qualification(label="Needs", answer="call +44 20 7946 0958")],
        quality=[QualityItem(parameter_name="Close", justification="ok", suggestion="confirm a@b.co", is_fatal=False)],
        extra_note="card 4111-1111-1111-1111",  # type: ignore[call-arg]
    )
    r = redactor()
    masked = r.redact_model(analysis)
    dumped = masked.model_dump_json()
    for secret in ("4111", "j.doe", "555", "7946", "a@b.co"):
        assert secret not in dumped
    assert masked.intent == "INTERESTED" and masked.quality_score == 80
    assert masked.bant.budget == "$1,200 a month"
    assert masked.summary[0].chapter_summary == "Email [EMAIL], phone [PHONE]."
    assert masked.model_extra == {"extra_note": "card [CARD]"}
    assert r.counts == {"card_number": 2, "email": 2, "phone_number": 3}
    assert analysis.intent_justification is not None and "4111" in analysis.intent_justification  # a copy


def test_text_without_pii_is_returned_unchanged_and_fast() -> None:
    text = "so we talked about pricing and the next steps for the pilot " * 200
    r = redactor()
    started = time.perf_counter()
    assert r.redact(text).text == text
    assert time.perf_counter() - started < 0.5
