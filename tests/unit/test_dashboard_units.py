"""The dashboard's pure functions: origins, embedding, CSP, CSV cells, chapter positions,
filters, bands and facts."""

from __future__ import annotations

from datetime import date

import pytest

from services.gateway.dashboard import handlers
from services.gateway.dashboard.facts import concerns_of, length_band, score_band
from services.gateway.errors import ValidationFailed


@pytest.mark.parametrize(
    ("raw", "origin"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("HTTPS://App.Example.COM:443/", "https://app.example.com"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("*", None),
        ("https://*.example.com", None),
        ("https://app.example.com/path", None),
        ("https://user:pw@app.example.com", None),
        ("javascript:alert(1)", None),
        ("https://app.example.com?x=1", None),
        ("https://app.example.com:99999", None),
        ("app.example.com", None),
    ],
)
def test_origins_are_canonical_or_refused(raw: str, origin: str | None) -> None:
    assert handlers.normalize_origin(raw) == origin


def test_csp_has_no_inline_script_and_never_a_wildcard_ancestor() -> None:
    assert handlers.frame_ancestors([]) == "'none'"
    csp = handlers.content_security_policy(["https://a.example", "https://b.example"])
    assert csp.endswith("frame-ancestors https://a.example https://b.example")
    assert "unsafe" not in csp and "*" not in csp and "script-src 'self';" in csp


def test_embedding_reads_the_frame_and_its_parent() -> None:
    framed = handlers.embedding("iframe", "https://crm.example.com/deals/7?x=1")
    assert framed == handlers.Embedding(True, "https://crm.example.com")
    assert handlers.embedding("document", "https://crm.example.com/") == handlers.Embedding(False, None)
    assert handlers.embedding("iframe", None) == handlers.Embedding(True, None)
    assert handlers.embedding_refused(framed, ["https://other.example"])
    assert not handlers.embedding_refused(framed, ["https://crm.example.com"])
    assert not handlers.embedding_refused(handlers.Embedding(True, None), [])  # unknown: the CSP decides


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@a", "'@a"),
        ("Ann", "Ann"),
        (None, ""),
        (72.5, "72.5"),
    ],
)
def test_csv_cells_never_start_like_a_formula(value: object, cell: str) -> None:
    assert handlers.csv_cell(value) == cell


def test_chapters_are_placed_at_their_earliest_quoted_time() -> None:
    summary = [
        {"chapter_name": "Intro", "chapter_summary": "At 00:03 the agent said hello."},
        {"chapter_name": "Pricing", "chapter_summary": "At 01:20 the customer said x. At 01:05 the agent said y."},
        {"chapter_name": "Abstract", "chapter_summary": "The customer wants a demo."},
        {"chapter_name": "Late", "chapter_summary": "At 1:02:00 something."},
    ]
    marks = handlers.chapter_marks(summary, duration_s=300.0)
    assert [m["start"] for m in marks] == [0.0, 65.0, None, None]  # past the end: no position


def test_filters_default_to_the_last_30_days_and_report_every_error() -> None:
    f = handlers.parse_filters({}, date(2026, 3, 31))
    assert (f.date_from, f.date_to) == (date(2026, 3, 2), date(2026, 3, 31))
    with pytest.raises(ValidationFailed) as caught:
        handlers.parse_filters(
            {"from": "2026-02-30", "to": "x", "intent": "MAYBE", "status": "done", "length_band": "7"},
            date(2026, 3, 31),
        )
    assert [e["field"] for e in caught.value.errors] == ["from", "to", "intent", "status", "length_band"]


def test_bands_and_concerns() -> None:
    assert [score_band(s) for s in (None, 0, 49.9, 50, 69.9, 70, 84.9, 85, 100)] == [4, 0, 0, 1, 1, 2, 2, 3, 3]
    assert [length_band(s) for s in (None, 59.9, 60, 299, 300, 899, 900, 7200)] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert concerns_of("Pricing, timing; Weather, pricing") == ("Pricing", "Timing", "Other")
    assert concerns_of("") == ()
