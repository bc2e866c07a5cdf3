"""What the command line tool shows people: tables, panels, the progress bar's columns."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from rich.console import Group, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from callpipe_client.models import STATUSES, CallStatus, CallSummary, ConfigView

STATUS_STYLE = {
    "received": "cyan",
    "fetching": "blue",
    "fetched": "blue",
    "analyzing": "magenta",
    "completed": "green",
    "failed": "red",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def clock(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") + "Z" if value is not None else "-"


def since(start: datetime | None, value: datetime | None) -> str:
    if start is None or value is None:
        return "-"
    return seconds((value - start).total_seconds())


def seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f}s"
    minutes, rest = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def score(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def outcomes_line(task: Task) -> Text:
    """``✓ accepted  = duplicate  ✗ rejected  ↷ done before``, then what the run waits for."""
    f = task.fields.get("outcomes", {})
    text = Text("  ")
    text.append(f"✓ {f.get('accepted', 0):,} accepted", style="green")
    text.append("  ")
    text.append(f"= {f.get('duplicate', 0):,} duplicate", style="yellow")
    text.append("  ")
    text.append(f"✗ {f.get('rejected', 0):,} rejected", style="red" if f.get("rejected") else "dim")
    if f.get("skipped"):
        text.append("  ")
        text.append(f"↷ {f['skipped']:,} done before", style="dim")
    if task.fields.get("note") and time.monotonic() < task.fields.get("note_until", 0.0):
        text.append("   ")
        text.append(task.fields["note"], style="yellow")
    return text


class SubmitProgress(Progress):
    """The bar, counts, rate and times on one line; the outcomes and any wait on the next, so
    both fit a terminal of 100 columns."""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            yield outcomes_line(task)


class CountColumn(ProgressColumn):
    """``1,234/10,000`` rows done."""

    def render(self, task: Task) -> Text:
        total = f"{int(task.total):,}" if task.total is not None else "?"
        return Text(f"{int(task.completed):,}/{total}", style="progress.download")


class RateColumn(ProgressColumn):
    """Calls per second settled by the API in this run (skipped ones excluded)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        sent = task.fields.get("sent", 0)
        rate = sent / elapsed if elapsed > 0.5 else 0.0
        return Text(f"{rate:,.0f} calls/s", style="cyan")


def progress_columns() -> list[ProgressColumn | str]:
    return [
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(bar_width=30),
        CountColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        "eta",
        TimeRemainingColumn(),
    ]


def call_panel(call: CallStatus) -> RenderableType:
    """``callpipe status``: the call's stages, result or error, and callback attempts."""
    head = Text()
    head.append(call.call_id, style="bold")
    head.append("  ")
    head.append_text(status_text(call.status))
    head.append(f"   tenant {call.tenant_id} / {call.subtenant_id}", style="dim")
    if call.agent_id:
        head.append(f"   agent {call.agent_id}", style="dim")
    stages = Table(show_header=False, box=None, pad_edge=False)
    stages.add_column(style="dim")
    stages.add_column()
    received = call.timestamps.received
    for name in STATUSES:
        when = getattr(call.timestamps, name)
        if when is None:
            continue
        shown = clock(when) if name == "received" else f"+{since(received, when)}"
        stages.add_row(name, shown)
    parts: list[RenderableType] = [head, stages]
    if call.result is not None:
        r = call.result
        result = Table(show_header=False, box=None, pad_edge=False)
        result.add_column(style="dim")
        result.add_column(overflow="fold")
        result.add_row("intent", f"{r.intent}  ({r.intent_justification})" if r.intent_justification else str(r.intent))
        result.add_row("quality score", score(r.quality_score))
        for chapter in r.summary:
            result.add_row("chapter", f"{chapter.chapter_name}: {chapter.chapter_summary}")
        if r.bant is not None:
            for name in ("needs", "objection", "concern_categories", "objection_handling", "budget", "timeline"):
                value = getattr(r.bant, name)
                if value:
                    result.add_row(f"bant.{name}", value.strip())
        for item in r.quality:
            fatal = " (fatal)" if item.is_fatal else ""
            result.add_row(
                f"{item.parameter_name}{fatal}", f"{score(item.inference_score)}/{score(item.parameter_score)}"
            )
        parts.append(result)
    if call.error is not None:
        parts.append(Text(f"failed at {call.error.stage}: {call.error.code}: {call.error.message}", style="red"))
    if call.callback is not None:
        cb = call.callback
        parts.append(Text(f"callback {cb.state or 'not reported yet'} → {cb.url}", style="bold"))
        if cb.attempts:
            attempts = Table(box=None, pad_edge=False)
            for column in ("#", "kind", "started", "HTTP", "latency", "error"):
                attempts.add_column(column, style="dim" if column == "#" else "")
            for a in cb.attempts:
                attempts.add_row(
                    str(a.number),
                    a.kind or "",
                    clock(a.started_at),
                    str(a.status_code or "-"),
                    f"{a.latency_ms:.0f} ms" if a.latency_ms is not None else "-",
                    a.error or "",
                )
            parts.append(attempts)
    return Group(*parts)


def calls_table(calls: Iterable[CallSummary | CallStatus], title: str | None = None) -> Table:
    """``callpipe list`` and ``watch``: one line per call."""
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("call", "status", "received", "elapsed", "intent", "score", "callback"):
        table.add_column(column, no_wrap=column in ("call", "received"))
    for call in calls:
        ts = call.timestamps
        end = ts.completed or ts.failed
        if isinstance(call, CallSummary):
            intent, value, callback = call.intent, call.quality_score, call.callback_state
        else:
            intent = call.result.intent if call.result else None
            value = call.result.quality_score if call.result else None
            callback = call.callback.state if call.callback else None
        detail = intent or (f"{call.error.stage}: {call.error.code}" if call.error else "")
        table.add_row(
            call.call_id,
            status_text(call.status),
            clock(ts.received),
            since(ts.received, end) if end else "",
            detail,
            score(value),
            callback or "",
        )
    return table


def status_counts(statuses: Iterable[str]) -> Text:
    counts = Counter(statuses)
    text = Text()
    for name in STATUSES:
        if counts.get(name):
            if text:
                text.append(" · ")
            text.append(f"{counts[name]:,} {name}", style=STATUS_STYLE[name])
    return text


def config_panel(view: ConfigView) -> RenderableType:
    head = Text()
    head.append(view.config_id, style="bold")
    head.append(f"  (from {view.source})", style="dim")
    levels = []
    for name, level in (("tenant", view.tenant), ("subtenant", view.subtenant)):
        if level is not None:
            levels.append(f"{name} v{level.version} ({clock(level.updated_at)})")
    labels = Text("labels: " + ", ".join(view.effective.labels))
    rubric = Table(box=None, pad_edge=False)
    for column in ("parameter", "max", "fatal", "description"):
        rubric.add_column(column, overflow="fold")
    for p in view.effective.rubric:
        rubric.add_row(p.parameter_name, str(p.max_score), "yes" if p.is_fatal else "", p.description)
    channels = Text(f"channels: left={view.effective.channels.left} right={view.effective.channels.right}")
    parts: list[RenderableType] = [head]
    if levels:
        parts.append(Text("levels: " + "; ".join(levels), style="dim"))
    parts.extend([labels, rubric, channels])
    return Group(*parts)
