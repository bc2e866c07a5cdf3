"""The submission journal: an append-only JSON Lines file that records, durably, which calls a
bulk submission sent and what the API answered, so an interrupted run (Ctrl-C, a crash, a lost
network) resumes without sending any accepted call again.

Records (one JSON object per line):

- ``run``: a run started, with its target (base URL, tenant, subtenant, API key prefix);
- ``sent``: a batch is about to be sent: its key, call ids, and ``not_before`` (the server's
  clock, from its last ``Date`` header, before the batch left). Written and fsynced *before* the
  request, so no request can reach the API without the journal knowing;
- ``outcomes``: the API's answer for a sent batch (``accepted`` and ``duplicate`` ids);
- ``unsent``: a sent batch that provably changed nothing (refused with 4xx before being
  recorded, e.g. 422 or 429), so its calls are free to be sent again;
- ``recovered``: a batch whose answer was lost, found recorded through the status API;
- ``rejected``: a call the API refused, with the fingerprint of its content and the errors.

A ``sent`` batch with no later record is *open*: its request may or may not have been recorded.
The next run settles it through the status API before sending anything (see ``bulk.reconcile``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from callpipe_client.errors import CallpipeError
from callpipe_client.models import FieldError

try:  # POSIX: one run at a time per journal
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

VERSION = 1


class JournalError(CallpipeError):
    """The journal cannot be used: another run holds it, or it belongs to another target."""

    code = "journal"


@dataclass
class OpenBatch:
    key: str
    ids: list[str]
    not_before: datetime | None


@dataclass
class JournalState:
    """What earlier runs established."""

    #: call id -> "accepted" or "duplicate": final, never sent again.
    done: dict[str, str] = field(default_factory=dict)
    #: call id -> (content fingerprint, errors): refused as sent; the same content is not resent.
    rejected: dict[str, tuple[str, list[FieldError]]] = field(default_factory=dict)
    #: batches sent whose answer was never recorded.
    open: dict[str, OpenBatch] = field(default_factory=dict)
    target: dict[str, Any] | None = None
    runs: int = 0


def fingerprint(encoded_item: bytes) -> str:
    """A short, stable digest of an item's content (to tell a corrected row from the same one)."""
    canonical = json.dumps(json.loads(encoded_item), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def load(path: Path) -> JournalState:
    """Replay the journal. A torn last line (a crash mid-write) is ignored: its batch's ``sent``
    record either made it whole (then the batch is open) or the request was never sent."""
    state = JournalState()
    if not path.exists():
        return state
    with path.open("rb") as f:
        lines = f.read().split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            if number >= len(lines) - 1:
                break  # the torn tail of an interrupted write
            raise JournalError(f"{path}: line {number} is not JSON; the journal is damaged") from None
        _apply(state, record)
    return state


def _apply(state: JournalState, record: Mapping[str, Any]) -> None:
    kind = record.get("type")
    if kind == "run":
        state.runs += 1
        state.target = state.target or record.get("target")
    elif kind == "sent":
        key = str(record["batch"])
        state.open[key] = OpenBatch(key, list(record["ids"]), _parse_time(record.get("not_before")))
    elif kind == "outcomes":
        state.open.pop(str(record["batch"]), None)
        for call_id in record.get("accepted", []):
            state.done[call_id] = "accepted"
            state.rejected.pop(call_id, None)
        for call_id in record.get("duplicate", []):
            state.done.setdefault(call_id, "duplicate")
            state.rejected.pop(call_id, None)
    elif kind == "recovered":
        state.open.pop(str(record["batch"]), None)
        for call_id in record.get("ids", []):
            state.done[call_id] = "accepted"
            state.rejected.pop(call_id, None)
    elif kind == "unsent":
        state.open.pop(str(record["batch"]), None)
    elif kind == "rejected":
        errors = [FieldError.model_validate(e) for e in record.get("errors", [])]
        state.rejected[str(record["id"])] = (str(record.get("fingerprint", "")), errors)


class Journal:
    """An open journal for one run: the loaded state, and the appender for this run's records.
    Safe to call from several threads (``submit_calls`` writes from a worker thread)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.state = JournalState()
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()

    def open(self, target: Mapping[str, Any], run_id: str) -> JournalState:
        """Lock the journal, replay it, check it belongs to ``target``, and start a run."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        if fcntl is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._file.close()
                self._file = None
                raise JournalError(f"{self.path} is in use by another run") from None
        self._drop_torn_tail()
        self.state = load(self.path)
        if self.state.target is not None and dict(self.state.target) != dict(target):
            self.close()
            raise JournalError(
                f"{self.path} records a submission to another target ({_describe(self.state.target)}); "
                f"this run is for {_describe(target)}. Use another journal file."
            )
        self._write({"type": "run", "v": VERSION, "run": run_id, "at": _now(), "target": dict(target)}, sync=True)
        return self.state

    def _drop_torn_tail(self) -> None:
        """Cut a last line that a crash left unfinished, so this run's records start on a line
        of their own (a torn ``sent`` record means its request was never sent)."""
        size = self.path.stat().st_size
        if size == 0:
            return
        with self.path.open("rb") as f:
            tail_start = max(0, size - 65536)
            f.seek(tail_start)
            tail = f.read()
            while b"\n" not in tail and tail_start > 0:
                tail_start = max(0, tail_start - 65536)
                f.seek(tail_start)
                tail = f.read()
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        os.truncate(self.path, tail_start + cut + 1 if cut >= 0 else 0)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()  # closing releases the lock
                self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, record: Mapping[str, Any], *, sync: bool) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
        with self._lock:
            if self._file is None:
                raise JournalError("the journal is closed")
            self._file.write(line)
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())

    # Each writer below is blocking (it may fsync): async code calls it through a thread.

    def sent(self, key: str, ids: list[str], not_before: datetime | None) -> None:
        """Before the request: durable, so a crash afterwards leaves the batch open, never unknown."""
        when = not_before.isoformat() if not_before is not None else None
        self._write({"type": "sent", "batch": key, "ids": ids, "not_before": when, "at": _now()}, sync=True)

    def outcomes(self, key: str, accepted: list[str], duplicate: list[str]) -> None:
        self._write({"type": "outcomes", "batch": key, "accepted": accepted, "duplicate": duplicate}, sync=True)
        self.state.open.pop(key, None)

    def recovered(self, key: str, ids: list[str]) -> None:
        self._write({"type": "recovered", "batch": key, "ids": ids, "at": _now()}, sync=True)
        self.state.open.pop(key, None)

    def unsent(self, key: str) -> None:
        self._write({"type": "unsent", "batch": key}, sync=False)
        self.state.open.pop(key, None)

    def rejected(self, call_id: str, fingerprint: str, errors: list[FieldError]) -> None:
        record = {
            "type": "rejected",
            "id": call_id,
            "fingerprint": fingerprint,
            "errors": [e.model_dump() for e in errors],
        }
        self._write(record, sync=False)


def _describe(target: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in target.items())


def default_path(input_path: str | os.PathLike[str]) -> Path:
    """The journal next to an input file: ``calls.csv`` -> ``calls.csv.journal``."""
    path = Path(input_path)
    return path.with_name(path.name + ".journal")
