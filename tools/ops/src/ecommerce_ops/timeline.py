"""An order's saga as a timeline: every record about it on the three topics and their dead-letter
topics, in time order, each with its offset from the first, who wrote it, its type and a one-line
description. Pure: the records come from kafka_reading.py, the text goes to the terminal or the demo.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka.structs import ConsumerRecord
from shared.events.base import Event
from shared.events.codec import InvalidRecord, UnknownEventType, decode
from shared.events.topics import DLT_SUFFIX

from .dead_letters import DeadLetterRecord, redrive_count

SOURCE_WIDTH = 13  # "inventory", and a dead letter's consumer group: "order-service"


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime  # when the event occurred (a dead letter: when it was dead-lettered; redriven: sent back)
    topic: str
    partition: int
    offset: int
    source: str  # the service that wrote it (a dead letter: the consumer group that gave up)
    event_type: str
    description: str
    event_id: str | None = None
    correlation_id: str | None = None  # the order the event is about (a saga's events, and what they caused)
    redrive_count: int = 0  # >0: this record was sent back from a dead-letter topic
    dead_letter: DeadLetterRecord | None = None

    @property
    def kind(self) -> str:
        """event, redriven or dead-letter: what a renderer colours differently."""
        if self.dead_letter is not None:
            return "dead-letter"
        return "redriven" if self.redrive_count else "event"


def entry_of(record: ConsumerRecord) -> TimelineEntry:
    """The timeline entry of one record of an event topic or a dead-letter topic."""
    recorded_at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    headers = [(name, value or b"") for name, value in record.headers or ()]
    if record.topic.endswith(DLT_SUFFIX):
        letter = DeadLetterRecord.of(record)
        return TimelineEntry(
            at=recorded_at,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            source=letter.consumer_group or "?",
            event_type=letter.event_type or "(unreadable)",
            description=first_line(
                f"DEAD-LETTERED after {letter.original_topic}@{letter.original_offset}: {letter.cause}", 200
            ),
            event_id=letter.event_id,
            correlation_id=letter.order_id,
            redrive_count=letter.redrive_count or 0,
            dead_letter=letter,
        )
    try:
        envelope = decode(record.value, headers)
    except (InvalidRecord, UnknownEventType) as exc:
        return TimelineEntry(
            recorded_at, record.topic, record.partition, record.offset, "?", "(unreadable)", str(exc)[:200]
        )
    count = redrive_count(headers) or 0
    return TimelineEntry(
        # A redriven record keeps its event's time of occurrence; it is shown when it was sent back.
        at=recorded_at if count else envelope.occurred_at,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        source=envelope.source,
        event_type=envelope.event_type,
        description=describe(envelope.event) + (f" (redriven, {count}x)" if count else ""),
        event_id=str(envelope.event_id),
        correlation_id=envelope.correlation_id,
        redrive_count=count,
    )


def timeline(records: Iterable[ConsumerRecord]) -> list[TimelineEntry]:
    """The records' entries in time order (ties: by topic, then offset)."""
    return sorted(map(entry_of, records), key=lambda entry: (entry.at, entry.topic, entry.offset))


def first_line(text: str, limit: int) -> str:
    """The first line of a text, cut to `limit` characters (a dead letter's whole cause is in
    `ecommerce dlt show`: a database error's DETAIL line can run long)."""
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def money(amount: int | None, currency: str | None) -> str:
    return "-" if amount is None else f"{amount / 100:.2f} {currency}"


def describe(event: Event) -> str:
    """One line about an event: its amount, its lines, its reason, whatever it is about. Names only
    fields meant to be shown: never a payment token."""
    data = event.model_dump()
    if "total_amount" in data:
        return f"total {money(data['total_amount'], data['currency'])}"
    if "amount" in data:
        extra = f", {data['reason']}" if "reason" in data else ""
        return f"{money(data['amount'], data['currency'])}{extra}"
    if "failures" in data:
        return "; ".join(
            f"{f['sku']}: {f['reason']} (wanted {f['requested']}, {f['available']} left)" for f in data["failures"]
        )
    if "reason" in data:
        return str(data["reason"])
    if "items" in data:
        return ", ".join(f"{line['quantity']}x {line['sku']}" for line in data["items"])
    if "reorder_level" in data:
        return f"{data['sku']}: {data['available']} left, reorder level {data['reorder_level']}"
    return ""


def offsets_ms(entries: list[TimelineEntry]) -> list[float]:
    """Each entry's time after the first one's, in milliseconds."""
    if not entries:
        return []
    t0 = entries[0].at
    return [(entry.at - t0).total_seconds() * 1000 for entry in entries]


def format_line(offset_ms: float, entry: TimelineEntry) -> str:
    return f"+{offset_ms:7.0f} ms  {entry.source:<{SOURCE_WIDTH}} {entry.event_type:<24} {entry.description}"


def format_timeline(entries: list[TimelineEntry]) -> list[str]:
    return [format_line(offset, entry) for offset, entry in zip(offsets_ms(entries), entries, strict=True)]


def format_state(order: Mapping[str, Any] | None, payment: Mapping[str, Any] | None, reservation: Any) -> str:
    """The three services' current state of the order, on one line."""
    if order is None:
        shown = "order: -"
    else:
        reason = order.get("cancellation_reason") or order.get("rejection_reason")
        shown = (
            f"order: {order['status']} total {money(order.get('total_amount'), order.get('currency'))}"
            f"{', ' + reason if reason else ''}"
        )
    payment_status = (payment or {}).get("status", "-")
    stock_status = (reservation or {}).get("status", "-")
    return f"{shown}   payment: {payment_status}   stock: {stock_status}"
