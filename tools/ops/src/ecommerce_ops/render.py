"""What the commands print: rich tables and lines for a person, plain JSON for a script."""

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aiokafka.structs import RecordMetadata
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .dead_letters import DeadLetterRecord, RedrivePlan
from .saga import SagaTrace
from .timeline import SOURCE_WIDTH, TimelineEntry, first_line, format_state, offsets_ms

KIND_STYLES = {"event": "", "redriven": "yellow", "dead-letter": "bold red"}
TERMINAL_STYLES = {"CONFIRMED": "green", "REJECTED": "yellow", "CANCELLED": "yellow"}


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping), for scripts."""
    print(json.dumps(data, indent=2, default=str))


def age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


# --- saga ------------------------------------------------------------------------------------------
def trace_lines(entries: list[TimelineEntry]) -> list[Text]:
    lines = []
    for offset, entry in zip(offsets_ms(entries), entries, strict=True):
        line = Text(f"+{offset:7.0f} ms  ", style="dim")
        line.append(f"{entry.source:<{SOURCE_WIDTH}} ", style="cyan")
        line.append(f"{entry.event_type:<24} ", style=KIND_STYLES[entry.kind] or "bold")
        line.append(entry.description, style=KIND_STYLES[entry.kind])
        lines.append(line)
    return lines


def print_trace(console: Console, found: SagaTrace) -> None:
    status = (found.order or {}).get("status", "?")
    console.print(
        Text.assemble(
            ("Saga of order ", "bold"),
            (str(found.order_id), "bold"),
            " -> ",
            (status, TERMINAL_STYLES.get(status, "red")),
        )
    )
    for line in trace_lines(found.entries):
        console.print(line, soft_wrap=True)
    if not found.entries:
        console.print("   (no record about it on the topics)", style="dim")
    console.print(format_state(found.order, found.payment, found.reservation), style="bold")


def trace_json(found: SagaTrace) -> dict[str, Any]:
    return {
        "order_id": str(found.order_id),
        "order": found.order,
        "payment": found.payment,
        "reservation": found.reservation,
        "timeline": [
            {
                "offset_ms": round(offset, 1),
                "at": entry.at.isoformat(),
                "topic": entry.topic,
                "partition": entry.partition,
                "offset": entry.offset,
                "source": entry.source,
                "event_type": entry.event_type,
                "event_id": entry.event_id,
                "kind": entry.kind,
                "redrive_count": entry.redrive_count,
                "description": entry.description,
            }
            for offset, entry in zip(offsets_ms(found.entries), found.entries, strict=True)
        ],
    }


def print_stuck(console: Console, traces: Sequence[SagaTrace], now: datetime, older_than_s: float) -> None:
    if not traces:
        console.print(f"No order has waited for an answer longer than {older_than_s:.0f} s.", style="green")
        return
    table = Table(title=f"Orders waiting for an answer for more than {older_than_s:.0f} s", title_justify="left")
    for column in ("order", "status", "age", "payment", "stock", "stopped at"):
        table.add_column(column, no_wrap=column != "stopped at")
    for found in traces:
        order = found.order or {}
        placed = datetime.fromisoformat(order["created_at"]) if "created_at" in order else now
        last = found.last
        stopped = (
            "(no event)" if last is None else f"{last.source} {last.event_type}: {first_line(last.description, 120)}"
        )
        table.add_row(
            str(found.order_id),
            order.get("status", "?"),
            age((now - placed).total_seconds()),
            (found.payment or {}).get("status", "-"),
            (found.reservation or {}).get("status", "-"),
            Text(stopped, style=KIND_STYLES[last.kind] if last else "dim"),
        )
    console.print(table)


# --- dead letters ----------------------------------------------------------------------------------
def letter_json(letter: DeadLetterRecord, now: datetime, sent_back: Mapping[str, int] | None = None) -> dict[str, Any]:
    shown = {} if sent_back is None else {"sent_back": sent_back.get(letter.position, 0)}
    return shown | {
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "order_id": letter.order_id,
        "cause_class": letter.cause_class,
        "cause_message": letter.cause_message,
        "original_topic": letter.original_topic,
        "original_partition": letter.original_partition,
        "original_offset": letter.original_offset,
        "consumer_group": letter.consumer_group,
        "redrive_count": letter.redrive_count,
        "dead_lettered_at": letter.dead_lettered_at.isoformat(),
        "age_s": round(letter.age_s(now), 1),
    }


def print_letters(
    console: Console, letters: Sequence[DeadLetterRecord], now: datetime, sent_back: Mapping[str, int] | None = None
) -> None:
    """One table per dead-letter topic; the ids whole (they are what `dlt redrive --event-id` and
    `saga trace` take), the cause's first line (`dlt show` has all of it). `sent_back`: how many
    times each was redriven, by position, when it was looked for."""
    if not letters:
        console.print("No dead letters.", style="green")
        return
    by_topic: dict[str, list[DeadLetterRecord]] = {}
    for letter in letters:
        by_topic.setdefault(letter.topic, []).append(letter)
    for topic, mine in by_topic.items():
        table = Table(title=f"{topic}: {len(mine)} dead letters", title_justify="left", title_style="bold")
        table.add_column("p:offset", no_wrap=True)
        table.add_column("event type", no_wrap=True)
        table.add_column("event id / order", no_wrap=True)  # whole: what redrive and trace take
        table.add_column("cause")
        table.add_column("from", no_wrap=True)  # the original offset (same partition, the original topic)
        for column in ("group", "count", *(("sent back",) if sent_back is not None else ()), "age"):
            table.add_column(column, no_wrap=True)
        for letter in mine:
            table.add_row(
                f"{letter.partition}:{letter.offset}",
                letter.event_type or "(unreadable)",
                Text.assemble(letter.event_id or "-", "\n", (letter.order_id or "-", "dim")),
                Text(first_line(letter.cause, 120), style="red"),
                str(letter.original_offset),
                letter.consumer_group or "?",
                "?" if letter.redrive_count is None else str(letter.redrive_count),
                *((f"{sent_back.get(letter.position, 0)}x",) if sent_back is not None else ()),
                age(letter.age_s(now)),
            )
        console.print(table)


def print_letter(console: Console, letter: DeadLetterRecord, now: datetime) -> None:
    console.print(Text(f"Dead letter {letter.position}", style="bold"))
    table = Table(show_header=False, box=None)
    table.add_column(style="cyan")
    table.add_column(overflow="fold")
    table.add_row("dead-lettered", f"{letter.dead_lettered_at.isoformat()} ({age(letter.age_s(now))} ago)")
    table.add_row("by group", letter.consumer_group or "?")
    table.add_row(
        "original", f"{letter.original_topic} partition {letter.original_partition} offset {letter.original_offset}"
    )
    table.add_row("key", (letter.key or b"").decode(errors="replace"))
    table.add_row("redrive count", "?" if letter.redrive_count is None else str(letter.redrive_count))
    table.add_row("cause", Text(letter.cause, style="bold red"))
    console.print(table)
    console.print(Text("Headers", style="bold"))
    headers = Table(show_header=False, box=None)
    headers.add_column(style="cyan")
    headers.add_column(overflow="fold")
    for name, value in decoded_headers(letter):
        if name != "kafka_dlt-exception-stacktrace":
            headers.add_row(name, escape(value))
    console.print(headers)
    console.print(Text("Value", style="bold"))
    try:
        console.print_json((letter.value or b"").decode())
    except (ValueError, UnicodeDecodeError):
        console.print(repr(letter.value))
    console.print(Text("Stack trace", style="bold"))
    console.print(letter.stacktrace or "(none)", style="dim", highlight=False, markup=False, soft_wrap=True)


def decoded_headers(letter: DeadLetterRecord) -> list[tuple[str, str]]:
    """Every header as text: the binary `kafka_dlt-*` numbers as numbers, the rest as UTF-8."""
    numbers = {
        "kafka_dlt-original-partition": str(letter.original_partition),
        "kafka_dlt-original-offset": str(letter.original_offset),
        "kafka_dlt-original-timestamp": str(letter.original_timestamp_ms),
    }
    return [(name, numbers.get(name) or value.decode(errors="replace")) for name, value in letter.headers]


def print_plan(console: Console, plan: RedrivePlan, *, execute: bool) -> None:
    verb = "Redriving" if execute else "Would redrive (dry run; --execute to send)"
    if plan.redrives:
        table = Table(title=f"{verb}: {len(plan.redrives)}", title_justify="left", title_style="bold")
        table.add_column("dead letter", no_wrap=True)
        table.add_column("event type", no_wrap=True)
        table.add_column("event id / order", no_wrap=True)
        table.add_column("to", no_wrap=True)
        table.add_column("redrive #", no_wrap=True)
        table.add_column("cause")
        for redrive in plan.redrives:
            letter = redrive.letter
            table.add_row(
                letter.position,
                letter.event_type or "(unreadable)",
                Text.assemble(letter.event_id or "-", "\n", (letter.order_id or "-", "dim")),
                f"{redrive.topic}:{redrive.partition}",
                str((letter.redrive_count or 0) + 1),
                Text(first_line(letter.cause, 120), style="red"),
            )
        console.print(table)
    else:
        console.print("Nothing to redrive.", style="yellow")
    for letter in plan.superseded:
        console.print(
            f"skipped {letter.position}: the same record was dead-lettered again later; only its latest one counts",
            style="dim",
        )
    for refused in plan.refused:
        console.print(
            f"REFUSED {refused.letter.position} ({refused.letter.event_id}): {refused.reason}", style="bold red"
        )


def plan_json(plan: RedrivePlan, now: datetime, *, sent: Sequence[RecordMetadata] = ()) -> dict[str, Any]:
    """The plan; `sent`: where the redriven records landed, when it was executed."""
    return {
        "executed": bool(sent),
        "sent": [{"topic": landed.topic, "partition": landed.partition, "offset": landed.offset} for landed in sent],
        "redrives": [
            {**letter_json(redrive.letter, now), "to_topic": redrive.topic, "to_partition": redrive.partition}
            for redrive in plan.redrives
        ],
        "refused": [{**letter_json(refused.letter, now), "reason": refused.reason} for refused in plan.refused],
        "superseded": [letter_json(letter, now) for letter in plan.superseded],
    }
