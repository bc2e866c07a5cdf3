"""``callpipe``: the partner API from a terminal or a script.

    callpipe submit calls.csv          # validate, submit with a progress bar, resumable
    callpipe watch --input calls.csv   # follow the submitted calls until they are final
    callpipe export --input calls.csv --format csv --output results.csv
    callpipe status call123 | list --status failed | redeliver call123
    callpipe verify-webhook --body body.json --headers headers.txt
    callpipe config get | config set --scope tenant config.json
    callpipe erase call123 --wait | erase --customer-id cust-7 | erasure ERASURE_ID

Human output on a terminal; ``--json`` for scripts (stdout carries only JSON). Exit codes:
0 success; 1 done, but some calls were rejected or failed (or a webhook did not verify);
2 usage error or unusable input/journal; 3 credentials or tenancy refused or missing; 4 the API
refused the request (404, 409, 422, ...); 5 the API is unreachable or failing (after retries);
6 ``watch`` timed out; 130 interrupted (run the same command again to resume a submission).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.live import Live

from callpipe_client import errors
from callpipe_client._version import __version__
from callpipe_client.cli import render
from callpipe_client.cli.common import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TIMEOUT,
    Cli,
    error_json,
    exit_code,
    message,
    read_text,
)
from callpipe_client.cli.submit import cmd_submit
from callpipe_client.client import AsyncClient
from callpipe_client.errors import CallpipeError
from callpipe_client.export import flatten, write_csv
from callpipe_client.inputs import InputError
from callpipe_client.journal import default_path, load
from callpipe_client.models import FINAL_STATUSES, STATUSES, CallStatus, CallSummary, Erasure
from callpipe_client.tracking import Tracker
from callpipe_client.webhooks import Webhook

# ---------------------------------------------------------------------------------------------
# status, list, redeliver, config
# ---------------------------------------------------------------------------------------------


async def cmd_status(cli: Cli) -> int:
    async with cli.client() as client:
        call = await client.get_call(cli.args.call_id)
    if cli.json:
        cli.emit(call.model_dump(mode="json"))
    else:
        cli.out.print(render.call_panel(call))
    return EXIT_OK


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "status": args.status,
        "subtenant": args.only_subtenant,
        "agent": args.agent,
        "received_from": args.from_,
        "received_to": args.to,
        "intent": args.intent,
    }


async def cmd_list(cli: Cli) -> int:
    args = cli.args
    limit = None if args.all else args.max
    shown: list[CallSummary] = []
    cursor = args.cursor
    async with cli.client() as client:
        while True:
            page_size = min(200, limit - len(shown)) if limit is not None else 200
            page = await client.list_calls(**_filters(args), limit=page_size, cursor=cursor)
            for call in page.calls:
                if cli.json:
                    cli.emit(call.model_dump(mode="json"))
                shown.append(call)
            cursor = page.next_cursor
            if cursor is None or (limit is not None and len(shown) >= limit):
                break
    if not cli.json:
        cli.out.print(render.calls_table(shown))
        if cursor:
            cli.note(f"More calls: --cursor {cursor}  (or --all)", "dim")
    return EXIT_OK


async def cmd_redeliver(cli: Cli) -> int:
    async with cli.client() as client:
        done = await client.redeliver_callback(cli.args.call_id)
    if cli.json:
        cli.emit(done.model_dump(mode="json"))
    else:
        text = f"Redelivery of {done.call_id}'s callback requested"
        cli.out.print(f"{text} (delivery {done.delivery_id}, command {done.command_id}).", markup=False)
    return EXIT_OK


async def cmd_erase(cli: Cli) -> int:
    """Erase one call, or every call of a customer; ``--wait`` follows the erasure until every
    service confirmed (exit 6 past ``--timeout``)."""
    args = cli.args
    if bool(args.call_id) == bool(args.customer_id or args.contact_number):
        raise ValueError("give a call id, or --customer-id and/or --contact-number (not both)")
    async with cli.client() as client:
        if args.call_id:
            accepted = await client.erase_call(args.call_id)
        else:
            accepted = await client.erase_customer(customer_id=args.customer_id, contact_number=args.contact_number)
        if not args.wait:
            if cli.json:
                cli.emit(accepted.model_dump(mode="json", exclude={"success"}))
            else:
                cli.out.print(
                    f"Erasure {accepted.erasure_id}: {accepted.calls} call(s), {accepted.status}.", markup=False
                )
            return EXIT_OK
        return await _follow_erasure(cli, client, accepted.erasure_id)


async def cmd_erasure(cli: Cli) -> int:
    async with cli.client() as client:
        if cli.args.wait:
            return await _follow_erasure(cli, client, cli.args.erasure_id)
        erasure = await client.get_erasure(cli.args.erasure_id)
    _show_erasure(cli, erasure)
    return EXIT_OK


async def _follow_erasure(cli: Cli, client: AsyncClient, erasure_id: str) -> int:
    deadline = None if cli.args.timeout is None else time.monotonic() + cli.args.timeout
    while True:
        erasure = await client.get_erasure(erasure_id)
        if erasure.is_completed:
            _show_erasure(cli, erasure)
            return EXIT_OK
        if deadline is not None and time.monotonic() >= deadline:
            _show_erasure(cli, erasure)
            return EXIT_TIMEOUT
        await asyncio.sleep(1.0)


def _show_erasure(cli: Cli, erasure: Erasure) -> None:
    if cli.json:
        cli.emit(erasure.model_dump(mode="json"))
        return
    services = ", ".join(f"{name} {s.confirmed}/{s.of}" for name, s in sorted(erasure.services.items()))
    cli.out.print(
        f"Erasure {erasure.erasure_id} ({erasure.scope}, {erasure.calls} call(s)): {erasure.status}"
        + (f"; confirmed by {services}" if services else ""),
        markup=False,
    )


async def cmd_config(cli: Cli) -> int:
    args = cli.args
    async with cli.client() as client:
        if args.action == "get":
            view = await client.get_analysis_config()
        else:
            document = _config_document(args)
            view = await client.set_analysis_config(document, scope=args.scope)
    if cli.json:
        cli.emit(view.model_dump(mode="json"))
    else:
        cli.out.print(render.config_panel(view))
    return EXIT_OK


def _config_document(args: argparse.Namespace) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if args.file:
        text = sys.stdin.read() if args.file == "-" else read_text(args.file)
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{args.file} is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise InputError(f"{args.file} must hold a JSON object")
        document.update(loaded)
    if args.labels:
        document["labels"] = [label.strip() for label in args.labels.split(",") if label.strip()]
    if args.channels:
        left, _, right = args.channels.partition(",")
        document["channels"] = {"left": left.strip(), "right": right.strip()}
    if not document and not args.clear:
        raise InputError("nothing to set: give a JSON file, --labels, --channels, or --clear")
    return document


# ---------------------------------------------------------------------------------------------
# watch and export
# ---------------------------------------------------------------------------------------------


def _ids(cli: Cli) -> list[str]:
    """Call ids from the arguments, or from a submission's journal (accepted and duplicate)."""
    args = cli.args
    ids = list(args.ids or [])
    journal = Path(args.journal) if args.journal else (default_path(args.input) if args.input else None)
    if journal is not None:
        if not journal.exists():
            raise InputError(f"no journal at {journal} (submit the file first, or pass --journal)")
        ids.extend(load(journal).done)
    return list(dict.fromkeys(ids))


async def cmd_watch(cli: Cli) -> int:
    args = cli.args
    ids = await asyncio.to_thread(_ids, cli)
    if not ids:
        raise InputError("no calls to watch: give call ids, --input FILE or --journal PATH")
    deadline = time.monotonic() + args.timeout if args.timeout else None
    live_enabled = not cli.json and cli.out.is_terminal

    async with cli.client() as client:
        tracker = Tracker(client, ids)

        def view() -> Group:
            statuses = [tracker.known[i].status for i in ids if i in tracker.known]
            header = render.status_counts(statuses)
            header.append(f"   ({len(ids):,} calls", style="dim")
            if tracker.missing:
                header.append(f", {len(tracker.missing)} not found", style="red")
            header.append(")", style="dim")
            rows = sorted(
                (tracker.known[i] for i in ids if i in tracker.known),
                key=lambda c: (c.status in FINAL_STATUSES, -STATUSES.index(c.status) if c.status in STATUSES else 0),
            )
            return Group(header, render.calls_table(rows[: args.rows]))

        live = Live(view(), console=cli.out, refresh_per_second=4, transient=False) if live_enabled else None
        try:
            with live or contextlib.nullcontext():
                while True:
                    remaining = deadline - time.monotonic() if deadline is not None else None
                    try:
                        # A refresh can take long under a rate limit: --timeout bounds it too.
                        newly_final = await asyncio.wait_for(tracker.refresh(), remaining)
                    except asyncio.TimeoutError:
                        break
                    if cli.json:
                        for call_id in newly_final:
                            cli.emit(tracker.known[call_id].model_dump(mode="json"))
                    if live is not None:
                        live.update(view())
                    if not tracker.pending():
                        break
                    if deadline is not None and time.monotonic() + args.interval >= deadline:
                        break
                    await asyncio.sleep(args.interval)
        except asyncio.CancelledError:
            return EXIT_INTERRUPTED
    if not cli.json and live is None:
        cli.out.print(view())
    if tracker.pending():
        cli.note(f"{len(tracker.pending()):,} calls still in progress after {args.timeout}s.", "yellow")
        return EXIT_TIMEOUT
    if tracker.missing:
        cli.note(f"Not found: {', '.join(sorted(tracker.missing)[:10])}", "red")
        return EXIT_REFUSED
    failed = [i for i in ids if i in tracker.known and tracker.known[i].status == "failed"]
    return EXIT_INCOMPLETE if failed else EXIT_OK


async def cmd_export(cli: Cli) -> int:
    args = cli.args
    async with cli.client() as client:
        if args.ids or args.input or args.journal:
            ids = await asyncio.to_thread(_ids, cli)
            tracker = Tracker(client, ids)
            await tracker.refresh(ids)
        else:
            tracker = Tracker(client, [])
            async for summary in client.iter_calls(**_filters(args), limit=200):
                tracker.ids.append(summary.call_id)
                tracker.known[summary.call_id] = summary
        # The list has no results: read each completed call by id (one request per call).
        needed = [i for i, c in tracker.known.items() if c.status == "completed" and isinstance(c, CallSummary)]
        await asyncio.gather(*(tracker.read(i) for i in needed))
    ordered = [tracker.known[i] for i in tracker.ids if i in tracker.known]
    await asyncio.to_thread(_write_export, args, ordered)
    missing = len(tracker.missing)
    where = args.output if args.output not in (None, "-") else "standard output"
    cli.note(
        f"Exported {len(ordered):,} calls to {where}" + (f" ({missing} not found)" if missing else "") + ".", "dim"
    )
    return EXIT_OK


def _write_export(args: argparse.Namespace, calls: list[CallStatus | CallSummary]) -> None:
    to_file = args.output not in (None, "-")
    out = open(args.output, "w", encoding="utf-8", newline="") if to_file else sys.stdout  # noqa: SIM115
    try:
        if args.format == "csv":
            write_csv((flatten(c, transcript=args.transcript) for c in calls), out)
        else:
            for call in calls:
                data = call.model_dump(mode="json")
                if not args.transcript and data.get("result"):
                    data["result"].pop("transcript", None)
                out.write(json.dumps(data, ensure_ascii=False) + "\n")
    finally:
        if to_file:
            out.close()
        else:
            out.flush()


# ---------------------------------------------------------------------------------------------
# verify-webhook
# ---------------------------------------------------------------------------------------------


def parse_headers(text: str) -> dict[str, str]:
    """A JSON object, or ``Name: value`` lines (as ``curl -D`` saves them)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        loaded = json.loads(stripped)
        return {str(k): str(v) for k, v in loaded.items()}
    headers = {}
    for line in stripped.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() and not name.startswith(("HTTP/", " ")):
            headers[name.strip().lower()] = value.strip()
    return headers


def cmd_verify_webhook(cli: Cli) -> int:
    args = cli.args
    secrets = read_text(args.secret_file).split() if args.secret_file else []
    if not secrets and os.environ.get("CALLPIPE_WEBHOOK_SECRET"):
        secrets = os.environ["CALLPIPE_WEBHOOK_SECRET"].split()
    if not secrets:
        raise InputError("no secret: set CALLPIPE_WEBHOOK_SECRET or pass --secret-file")
    try:
        body = Path(args.body).read_bytes() if args.body != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise InputError(f"cannot read {args.body}: {exc.strerror}") from None
    headers = parse_headers(read_text(args.headers))
    now = None
    if args.any_age:
        with contextlib.suppress(ValueError):
            now = float(headers.get("webhook-timestamp", ""))
    try:
        verified = Webhook(secrets).verify_message(body, headers, now=now)
    except errors.WebhookVerificationError as exc:
        if cli.json:
            cli.emit({"valid": False, "error": str(exc)})
        else:
            cli.err.print(f"invalid: {exc}", style="red", markup=False)
        return EXIT_INCOMPLETE
    callback = verified.callback
    if cli.json:
        cli.emit(
            {
                "valid": True,
                "webhook_id": verified.webhook_id,
                "timestamp": verified.timestamp,
                "callback": callback.model_dump(mode="json"),
            }
        )
    else:
        state = "failed" if callback.failed else (callback.status or "completed")
        signed = f"webhook-id {verified.webhook_id}, signed at {verified.timestamp}"
        cli.out.print(f"valid: call {callback.call_id} ({state}), {signed}", style="green", markup=False)
        if callback.error is not None:
            cli.out.print(f"  {callback.error.stage}: {callback.error.code}: {callback.error.message}", markup=False)
        elif callback.intent:
            cli.out.print(
                f"  intent {callback.intent}, quality score {render.score(callback.quality_score)}", markup=False
            )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# the parser and the exit codes
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="callpipe",
        description="The callpipe partner API from the command line.",
        epilog="Settings: CALLPIPE_BASE_URL, CALLPIPE_API_KEY, CALLPIPE_API_SECRET, CALLPIPE_TENANT_ID, "
        "CALLPIPE_SUBTENANT_ID, or a KEY=VALUE file in CALLPIPE_ENV_FILE / --env-file. Exit codes: 0 ok, "
        "1 some calls rejected or failed, 2 usage, 3 credentials/tenancy, 4 refused, 5 unavailable, "
        "6 watch timeout, 130 interrupted.",
    )
    p.add_argument("--version", action="version", version=f"callpipe-client {__version__}")
    p.add_argument("--base-url", help="API base URL (default http://127.0.0.1:8000)")
    p.add_argument("--env-file", help="KEY=VALUE file with API_KEY, API_SECRET, TENANT_ID, SUBTENANT_ID")
    p.add_argument("--tenant", help="x-tenant-id")
    p.add_argument("--subtenant", help="x-sub-tenant-id")
    p.add_argument("--timeout", type=float, help="seconds per request (default 30)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress and no notes on stderr")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _submit_parser(sub)

    st = sub.add_parser("status", help="a call's status, result and callback attempts")
    st.add_argument("call_id")

    ls = sub.add_parser("list", help="list calls, newest first")
    _filter_options(ls)
    ls.add_argument("--max", type=int, default=50, help="calls to show (default 50)")
    ls.add_argument("--all", action="store_true", help="every matching call")
    ls.add_argument("--cursor", help="continue from a previous list")

    w = sub.add_parser("watch", help="follow calls until they are completed or failed")
    _id_sources(w)
    w.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes (default 5)")
    w.add_argument("--timeout", type=float, help="give up after this many seconds (exit 6)")
    w.add_argument("--rows", type=int, default=20, help="table rows on screen (default 20)")

    e = sub.add_parser("export", help="results as JSON Lines or CSV")
    _id_sources(e)
    _filter_options(e)
    e.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    e.add_argument("--output", "-o", help="file (default: standard output)")
    e.add_argument("--transcript", action="store_true", help="include the transcript")

    r = sub.add_parser("redeliver", help="deliver a call's callback again")
    r.add_argument("call_id")

    v = sub.add_parser("verify-webhook", help="verify a saved callback's signature (Standard Webhooks)")
    v.add_argument("--body", required=True, help="the raw body as received (file, or -)")
    v.add_argument("--headers", required=True, help="its headers: JSON object or 'Name: value' lines")
    v.add_argument("--secret-file", help="file with the whsec_ secret(s) (default: CALLPIPE_WEBHOOK_SECRET)")
    v.add_argument("--any-age", action="store_true", help="accept an old timestamp (a saved callback)")

    _erasure_parsers(sub)

    c = sub.add_parser("config", help="the analysis configuration")
    csub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    csub.add_parser("get", help="the configuration in effect")
    cs = csub.add_parser("set", help="store a new version of the tenant or subtenant level")
    cs.add_argument("--scope", choices=("tenant", "subtenant"), required=True)
    cs.add_argument("file", nargs="?", help="JSON document {labels, rubric, channels} (or -)")
    cs.add_argument("--labels", help="comma-separated qualification labels")
    cs.add_argument("--channels", help="LEFT,RIGHT parties, e.g. agent,customer")
    cs.add_argument("--clear", action="store_true", help="clear the level (inherit everything)")
    return p


def _erasure_parsers(sub: Any) -> None:
    er = sub.add_parser("erase", help="erase a call, or every call of a customer, in every service")
    er.add_argument("call_id", nargs="?", help="the call to erase")
    er.add_argument("--customer-id", help="erase every call of this customer id ...")
    er.add_argument("--contact-number", help="... or of this contact number (either matches)")
    er.add_argument("--wait", action="store_true", help="follow the erasure until every service confirmed")
    er.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds (exit 6)")
    es = sub.add_parser("erasure", help="an erasure's status and each service's confirmations")
    es.add_argument("erasure_id")
    es.add_argument("--wait", action="store_true", help="follow it until every service confirmed")
    es.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds (exit 6)")


def _submit_parser(sub: Any) -> None:
    s = sub.add_parser("submit", help="submit calls from a CSV or JSON Lines file (resumable)")
    s.add_argument("file", help="CSV or JSONL file, or - for standard input")
    s.add_argument("--format", choices=("csv", "jsonl"), help="default: by extension, else by content")
    s.add_argument("--map", action="append", metavar="COLUMN=FIELD", help="map a CSV column (repeatable)")
    s.add_argument("--journal", help="journal path (default: FILE.journal next to the input)")
    s.add_argument("--no-journal", action="store_true", help="do not record progress (cannot resume)")
    s.add_argument("--rejected", help="rejected-rows file (default: FILE.rejected.csv|jsonl)")
    s.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    s.add_argument("--batch-size", type=int, default=50, help="calls per request, 1-50 (default 50)")
    s.add_argument("--dry-run", action="store_true", help="validate only; send nothing")


def _filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", help="received, fetching, fetched, analyzing, completed, failed (comma-separated)")
    p.add_argument("--only-subtenant", help="only this subtenant's calls (when --subtenant is not set)")
    p.add_argument("--agent", help="only this agent's calls")
    p.add_argument("--from", dest="from_", metavar="TIME", help="received at or after (ISO 8601 UTC)")
    p.add_argument("--to", metavar="TIME", help="received before (ISO 8601 UTC)")
    p.add_argument("--intent", help="INTERESTED, NOT_INTERESTED, FOLLOW_UP, ...")


def _id_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("ids", nargs="*", metavar="ID", help="call ids")
    p.add_argument("--input", help="the calls a `submit FILE` accepted (reads FILE.journal)")
    p.add_argument("--journal", help="the calls a journal recorded as accepted")


COMMANDS = {
    "submit": cmd_submit,
    "status": cmd_status,
    "list": cmd_list,
    "watch": cmd_watch,
    "export": cmd_export,
    "redeliver": cmd_redeliver,
    "config": cmd_config,
    "erase": cmd_erase,
    "erasure": cmd_erasure,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli = Cli(args)
    try:
        if args.command == "verify-webhook":
            return cmd_verify_webhook(cli)
        return asyncio.run(COMMANDS[args.command](cli))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (CallpipeError, ValueError) as exc:
        if cli.json:
            cli.emit({"error": error_json(exc)})
        else:
            cli.err.print(f"error: {message(exc)}", style="red", markup=False, highlight=False, soft_wrap=True)
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
