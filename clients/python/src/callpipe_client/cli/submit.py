"""``callpipe submit FILE``: validate every row, then submit with a progress bar; resumable.

1. Every row is read and checked against the API's rules; bad rows are listed with their line.
2. The rows are submitted through ``submit_calls`` with the journal next to the input (by
   default), so Ctrl-C, a crash or a lost network can be followed by the same command, which
   sends only what is not accepted yet.
3. A summary, and a file of rejected rows (the input's own columns plus ``callpipe_line`` and
   ``callpipe_errors``) to correct and submit again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.progress import Progress, TaskID

from callpipe_client import bulk
from callpipe_client.cli import render
from callpipe_client.cli.common import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, Cli, error_json, exit_code, message
from callpipe_client.client import RetryEvent
from callpipe_client.errors import CallpipeError
from callpipe_client.inputs import REJECTED_COLUMNS, InputError, Row, parse_mapping, read_rows
from callpipe_client.journal import JournalError, default_path
from callpipe_client.models import FieldError
from callpipe_client.validation import encode_item, normalize, size_errors, validate_item

SHOWN_INVALID_ROWS = 10

RowSource = Callable[[], Iterator[Row]]


def errors_text(problems: Sequence[FieldError]) -> str:
    return "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in problems)


def check(row: Row) -> list[FieldError]:
    """The row's problems, as the API would see them (plus what reading it found)."""
    if row.item is None:
        return row.errors
    item = normalize(row.item)
    problems = validate_item(item)
    if not problems:
        problems = size_errors(item, encode_item(item))
    return problems


def row_id(row: Row) -> str | None:
    call = (row.item or {}).get("call")
    return call.get("id") if isinstance(call, dict) and isinstance(call.get("id"), str) else None


def is_csv(args: argparse.Namespace) -> bool:
    if args.format:
        return bool(args.format == "csv")
    suffix = Path(args.file).suffix.lower()
    return args.file != "-" and suffix not in (".jsonl", ".ndjson", ".json")


class SubmitCommand:
    def __init__(self, cli: Cli) -> None:
        self.cli = cli
        self.args = cli.args
        mapping = parse_mapping(self.args.map or [])
        self.is_file = self.args.file != "-"
        if self.is_file and not Path(self.args.file).is_file():
            raise InputError(f"no such file: {self.args.file}")
        self._mapping = mapping
        self._stdin_rows: list[Row] | None = None
        # Results by input line: the command's own tally (it outlives an abandoned run).
        self.by_line: dict[int, bulk.CallResult] = {}
        self.counts = {bulk.ACCEPTED: 0, bulk.DUPLICATE: 0, bulk.REJECTED: 0, bulk.SKIPPED: 0}
        self.recovered = 0
        self.sent = 0
        self.lines: list[int] = []  # the input line of each item handed to submit_calls, by index
        self.invalid: dict[int, list[FieldError]] = {}  # line -> problems, from the first pass
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def rows(self) -> Iterator[Row]:
        """The input's rows, afresh (standard input is read once and kept)."""
        if not self.is_file:
            if self._stdin_rows is None:
                self._stdin_rows = list(read_rows("-", self.args.format, self._mapping))
            return iter(self._stdin_rows)
        return read_rows(self.args.file, self.args.format, self._mapping)

    # -- 1. validation -----------------------------------------------------------------------

    def validate(self) -> tuple[int, list[tuple[int, str | None, list[FieldError]]]]:
        total, invalid = 0, []
        for row in self.rows():
            total += 1
            if problems := check(row):
                invalid.append((row.line, row_id(row), problems))
        return total, invalid

    def report_invalid(self, total: int, invalid: list[tuple[int, str | None, list[FieldError]]]) -> None:
        cli = self.cli
        valid = total - len(invalid)
        cli.note(f"Checked {total:,} rows of {self.args.file}: {valid:,} valid, {len(invalid):,} invalid.")
        for line, call_id, problems in invalid[:SHOWN_INVALID_ROWS]:
            cli.note(f"  line {line}{f' ({call_id})' if call_id else ''}: {errors_text(problems)}", "red")
        if len(invalid) > SHOWN_INVALID_ROWS:
            cli.note(f"  ... and {len(invalid) - SHOWN_INVALID_ROWS:,} more (all in the rejected-rows file)", "red")

    # -- 2. submission -----------------------------------------------------------------------

    def journal_path(self) -> Path | None:
        if self.args.no_journal:
            return None
        if self.args.journal:
            return Path(self.args.journal)
        if self.is_file:
            return default_path(self.args.file)
        self.cli.note("Reading standard input without --journal: this run cannot be resumed.", "yellow")
        return None

    def items(self) -> Iterator[dict[str, Any]]:
        """The rows found valid, for ``submit_calls``; the others are recorded rejected here (each
        row is checked once: ``submit_calls`` is told not to check them again)."""
        for row in self.rows():
            problems = self.invalid.get(row.line)
            if problems is not None or row.item is None:
                self.record(row.line, bulk.CallResult(-1, row_id(row), bulk.REJECTED, problems or row.errors, "local"))
                continue
            self.lines.append(row.line)
            yield row.item

    def record(self, line: int, result: bulk.CallResult) -> None:
        self.by_line[line] = result
        self.counts[result.outcome] += 1
        self.recovered += result.recovered
        if result.source == "server":
            self.sent += 1
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, advance=1, sent=self.sent, outcomes=dict(self.counts))

    def on_result(self, result: bulk.CallResult) -> None:
        self.record(self.lines[result.index], result)

    def on_retry(self, event: RetryEvent) -> None:
        if self.progress is not None and self.task is not None:
            why = "rate limited" if event.reason == "rate_limited" else f"retrying after {event.reason} error"
            # Shown for as long as the wait lasts (every request waits out a rate limit together).
            note_until = time.monotonic() + event.wait_s
            self.progress.update(self.task, note=f"{why}: waiting {event.wait_s:.1f}s", note_until=note_until)

    async def submit(self, total: int, journal: Path | None) -> tuple[bulk.SubmitReport | None, CallpipeError | None]:
        args, cli = self.args, self.cli
        if cli.progress_enabled:
            self.progress = render.SubmitProgress(*render.progress_columns(), console=cli.err)
            self.task = self.progress.add_task(f"Submitting {Path(args.file).name}", total=total)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        presses = 0

        def on_signal() -> None:
            nonlocal presses
            presses += 1
            if presses == 1:
                stop.set()
                cli.note("Stopping: waiting for the requests in flight (Ctrl-C again to abandon them).", "yellow")
            elif main is not None:
                main.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            async with cli.client(self.on_retry) as client:
                with self.progress or contextlib.nullcontext():
                    report = await client.submit_calls(
                        self.items(),
                        concurrency=args.concurrency,
                        max_batch_calls=args.batch_size,
                        journal=journal,
                        on_result=self.on_result,
                        stop=stop,
                        validate=False,  # checked in the first pass (self.invalid)
                    )
            return report, None
        except bulk.SubmitAborted as exc:
            if isinstance(exc.cause, JournalError):
                raise exc.cause from None
            return exc.report, exc.cause
        except asyncio.CancelledError:
            return None, None
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    # -- 3. results ----------------------------------------------------------------------------

    def rejected_path(self) -> Path | None:
        if self.args.rejected:
            return Path(self.args.rejected)
        if not self.is_file:
            return None
        source = Path(self.args.file)
        return source.with_name(source.name + ".rejected" + (".csv" if is_csv(self.args) else ".jsonl"))

    def write_rejected(self) -> Path | None:
        """Rejected rows with their line and errors; a stale default file from an earlier run goes."""
        path = self.rejected_path()
        rejected = {line: r for line, r in self.by_line.items() if r.outcome == bulk.REJECTED}
        if path is None:
            return None
        if not rejected:
            if not self.args.rejected and path.exists():
                path.unlink()
            return None
        rows = [row for row in self.rows() if row.line in rejected]
        with path.open("w", encoding="utf-8", newline="") as out:
            if is_csv(self.args):
                header = next((list(r.raw) for r in rows if isinstance(r.raw, dict)), [])
                header = [c for c in header if isinstance(c, str) and c not in REJECTED_COLUMNS]
                writer = csv.DictWriter(out, fieldnames=[*header, *REJECTED_COLUMNS], extrasaction="ignore")
                writer.writeheader()
                for row in rows:
                    cells = {k: v for k, v in (row.raw or {}).items() if isinstance(k, str)}
                    problems = errors_text(rejected[row.line].errors)
                    writer.writerow({**cells, "callpipe_line": row.line, "callpipe_errors": problems})
            else:
                for row in rows:
                    problems_json = [e.model_dump() for e in rejected[row.line].errors]
                    body = dict(row.item) if row.item is not None else {"callpipe_raw": str(row.raw).rstrip("\n")}
                    record = {**body, "callpipe_line": row.line, "callpipe_errors": problems_json}
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return path

    def summary(
        self,
        *,
        total: int,
        elapsed: float,
        report: bulk.SubmitReport | None,
        interrupted: bool,
        journal: Path | None,
        rejected_file: Path | None,
    ) -> dict[str, Any]:
        return {
            "input": self.args.file,
            "rows": total,
            **self.counts,
            "recovered": self.recovered,
            "not_sent": total - len(self.by_line),
            "interrupted": interrupted,
            "elapsed_s": round(elapsed, 3),
            "calls_per_s": round(self.sent / elapsed, 1) if elapsed > 0 else None,
            "requests": report.requests if report else None,
            "rate_limited": report.rate_limited if report else None,
            "journal": str(journal) if journal else None,
            "rejected_file": str(rejected_file) if rejected_file else None,
            "rejected_rows": [
                {"line": line, "call_id": r.call_id, "source": r.source, "errors": [e.model_dump() for e in r.errors]}
                for line, r in sorted(self.by_line.items())
                if r.outcome == bulk.REJECTED
            ],
        }

    def print_summary(self, s: dict[str, Any], aborted: CallpipeError | None) -> None:
        note = self.cli.note
        rate = f" ({s['calls_per_s']:,} calls/s)" if s.get("calls_per_s") else ""
        title = "Interrupted" if s["interrupted"] else ("Stopped" if aborted else "Done")
        note(f"{title}: {s['rows']:,} rows of {s['input']} in {render.seconds(s['elapsed_s'])}{rate}", "bold")
        note(f"  accepted   {s['accepted']:>9,}", "green")
        note(f"  duplicate  {s['duplicate']:>9,}  (already known to the API, or repeated in the input)", "yellow")
        where = f"  -> {s['rejected_file']}" if s["rejected_file"] else ""
        note(f"  rejected   {s['rejected']:>9,}{where}", "red" if s["rejected"] else "")
        if s["skipped"]:
            note(f"  skipped    {s['skipped']:>9,}  (accepted in an earlier run of this journal)")
        if s["not_sent"]:
            note(f"  not sent   {s['not_sent']:>9,}", "yellow")
        if s["recovered"]:
            note(f"  {s['recovered']:,} of these calls were found recorded through the status API after an interrupted")
            note("  request (their answers had been lost): they were not sent again.")
        if s.get("rate_limited"):
            waits = "wait" if s["rate_limited"] == 1 else "waits"
            note(f"  {s['rate_limited']:,} rate-limit {waits} (429) over {s['requests']:,} batch requests", "dim")
        if s["journal"]:
            note(f"Journal: {s['journal']}", "dim")
        if aborted is not None:
            note(f"error: {message(aborted)}", "red")
        if s["interrupted"] or aborted is not None:
            if s["journal"]:
                note("Run the same command again to resume: accepted calls are not sent again.", "yellow")
            else:
                note("This run had no journal: calls sent again will be answered duplicate.", "yellow")

    async def run(self) -> int:
        cli = self.cli
        total, invalid = await asyncio.to_thread(self.validate)
        self.invalid = {line: problems for line, _, problems in invalid}
        if not cli.json:
            self.report_invalid(total, invalid)
        if self.args.dry_run:
            if cli.json:
                shown = [
                    {"line": line, "call_id": cid, "errors": [e.model_dump() for e in problems]}
                    for line, cid, problems in invalid
                ]
                cli.emit({"rows": total, "valid": total - len(invalid), "invalid": shown})
            return EXIT_INCOMPLETE if invalid else EXIT_OK
        journal = self.journal_path()
        started = time.monotonic()
        report, aborted = await self.submit(total, journal)
        elapsed = time.monotonic() - started
        interrupted = report is None or report.interrupted
        rejected_file = await asyncio.to_thread(self.write_rejected)
        summary = self.summary(
            total=total,
            elapsed=elapsed,
            report=report,
            interrupted=interrupted,
            journal=journal,
            rejected_file=rejected_file,
        )
        if aborted is not None:
            summary["error"] = error_json(aborted)
        if cli.json:
            cli.emit(summary)
        else:
            self.print_summary(summary, aborted)
        if interrupted:
            return EXIT_INTERRUPTED
        if aborted is not None:
            return exit_code(aborted)
        return EXIT_INCOMPLETE if self.counts[bulk.REJECTED] else EXIT_OK


async def cmd_submit(cli: Cli) -> int:
    return await SubmitCommand(cli).run()
