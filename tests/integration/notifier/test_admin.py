"""``python -m services.notifier.admin``: signing secrets shown, created and rotated."""

from __future__ import annotations

import json

import pytest

from services.notifier import admin


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:  # type: ignore[type-arg]
    assert admin.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_show_creates_the_first_secret_and_rotate_keeps_the_previous_one_for_the_grace_period(
    notifier_db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", notifier_db)
    first = run(capsys, "signing-secret", "show", "--partner", "ptn_admin")
    assert first["secret"].startswith("whsec_") and first["previous_still_valid"] == []
    assert run(capsys, "signing-secret", "show", "--partner", "ptn_admin")["secret"] == first["secret"]

    rotated = run(capsys, "signing-secret", "rotate", "--partner", "ptn_admin", "--grace-hours", "2")
    assert rotated["secret"] != first["secret"]
    assert [p["secret"] for p in rotated["previous_still_valid"]] == [first["secret"]]

    immediate = run(capsys, "signing-secret", "rotate", "--partner", "ptn_admin", "--grace-hours", "0")
    # The secret rotated out with no grace is gone; the first one is still within its 2 hours.
    assert [p["secret"] for p in immediate["previous_still_valid"]] == [first["secret"]]


def test_a_malformed_partner_id_is_refused(notifier_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", notifier_db)
    assert admin.main(["signing-secret", "show", "--partner", " "]) == 1
