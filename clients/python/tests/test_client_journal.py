"""The journal: what a replay establishes, a crash's torn last line, one run at a time, and a
journal that belongs to another target."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from callpipe_client import FieldError, Journal, JournalError
from callpipe_client.journal import default_path, fingerprint, load

TARGET = {"base_url": "http://api", "tenant_id": "t", "subtenant_id": "s", "api_key": "ck_1234567"}


def test_replay_settles_answered_batches_and_leaves_unanswered_ones_open(tmp_path: Path) -> None:
    path = tmp_path / "calls.csv.journal"
    not_before = datetime(2026, 1, 1, 10, 0, 5, tzinfo=timezone.utc)
    with Journal(path) as journal:
        journal.open(TARGET, "run1")
        journal.sent("run1-1", ["a", "b"], None)
        journal.outcomes("run1-1", ["a"], ["b"])
        journal.sent("run1-2", ["c"], not_before)
        journal.sent("run1-3", ["d"], not_before)
        journal.unsent("run1-3")
        journal.sent("run1-4", ["e", "f"], not_before)
        journal.recovered("run1-4", ["e", "f"])
        journal.rejected("g", "fp", [FieldError(field="call.id", message="id should not be empty")])
    state = load(path)
    assert state.done == {"a": "accepted", "b": "duplicate", "e": "accepted", "f": "accepted"}
    assert list(state.open) == ["run1-2"] and state.open["run1-2"].not_before == not_before
    assert state.rejected["g"][0] == "fp" and state.rejected["g"][1][0].field == "call.id"
    assert state.target == TARGET and state.runs == 1


def test_a_torn_last_line_is_cut_before_the_next_run_appends(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path) as journal:
        journal.open(TARGET, "run1")
        journal.sent("run1-1", ["a"], None)
    with path.open("ab") as f:
        f.write(b'{"type":"sent","batch":"run1-2","ids":["b"')  # the crash came mid-write
    assert list(load(path).open) == ["run1-1"]
    with Journal(path) as journal:
        assert list(journal.open(TARGET, "run2").open) == ["run1-1"]
        journal.outcomes("run1-1", ["a"], [])
    lines = path.read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)  # every line whole again
    assert load(path).done == {"a": "accepted"}


def test_one_run_at_a_time_and_only_for_its_own_target(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path) as first:
        first.open(TARGET, "run1")
        with pytest.raises(JournalError, match="in use"):
            Journal(path).open(TARGET, "run2")
    with pytest.raises(JournalError, match="another target"):
        Journal(path).open({**TARGET, "tenant_id": "other"}, "run3")
    Journal(path).open(TARGET, "run4")  # the same target is fine once the first run is gone


def test_helpers(tmp_path: Path) -> None:
    assert default_path(tmp_path / "calls.csv") == tmp_path / "calls.csv.journal"
    assert fingerprint(b'{"b":1,"a":2}') == fingerprint(b'{"a": 2, "b": 1}')
    assert fingerprint(b'{"a":1}') != fingerprint(b'{"a":2}')
    damaged = tmp_path / "damaged"
    damaged.write_text('{"type":"run","target":{}}\nnot json\n{"type":"run","target":{}}\n')
    with pytest.raises(JournalError, match="line 2"):
        load(damaged)
