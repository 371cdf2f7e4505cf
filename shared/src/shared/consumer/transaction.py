"""What one worker transaction does: claim the events in processed_events (a conflict means the
effect is already committed), open the service's unit of work on the claimed events, run their
handlers in order, flush the unit of work, commit.

The unit of work (a `Batch`) is how a batch stays cheap: the service's `open_batch` loads and locks,
in a few set-based statements, everything the batch's events touch; the handlers then work on that
state in memory (the domain's pure rules) and note what they change and emit; `flush` writes it back
in a few set-based statements, whatever the batch's size. One record (the worker's fallback after a
failed batch) is a batch of one.
"""

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.consumer.retry import NonRetryableError
from shared.db import driver_connection
from shared.events.base import Envelope, Event
from shared.events.codec import InvalidRecord, UnknownEventType, decode
from shared.logging import bind_context
from shared.outbox.writer import add_to_outbox
from shared.tracing import process_span


class Batch(Protocol):
    """A service's unit of work for one worker transaction."""

    async def flush(self) -> None:
        """Write what the handlers changed and emitted (inside the transaction, before the commit)."""

    def committed(self) -> None:
        """Called once the transaction committed (e.g. to wake a loop that acts on the new rows)."""


# The handlers' first argument is the service's Batch (typed loosely: each service has its own).
Handler = Callable[[Any, Envelope], Awaitable[None]]
# Opens the unit of work on the claimed events of a batch, in partition order: loads and locks what
# they touch, in the service's one lock order, so two batches never wait on each other in a cycle.
BatchOpener = Callable[[AsyncSession, Sequence[Envelope]], Awaitable[Batch]]

E = TypeVar("E", bound=Event)


def payload(envelope: Envelope, *expected: type[E]) -> E:
    """The envelope's event, typed for its handler. Another type means the handler table is wired
    wrong, which no retry heals: NonRetryableError, so the record is dead-lettered at once."""
    if not isinstance(envelope.event, expected):
        names = " or ".join(cls.event_type for cls in expected)
        raise NonRetryableError(f"expected {names}, got {envelope.event_type}")
    return envelope.event


class SessionBatch:
    """The simplest unit of work, and the base of the services' own: the transaction's session, the
    outbox rows the handlers emit (written in one statement at flush, in emission order), and
    callbacks to run once committed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._outbox: list[Envelope] = []
        self._on_commit: list[Callable[[], None]] = []

    def emit(self, *envelopes: Envelope) -> None:
        self._outbox.extend(envelopes)

    def on_commit(self, callback: Callable[[], None]) -> None:
        self._on_commit.append(callback)

    async def flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        await add_to_outbox(self.session, *outbox)

    def committed(self) -> None:
        for callback in self._on_commit:
            callback()


async def open_session_batch(session: AsyncSession, _envelopes: Sequence[Envelope]) -> Batch:
    return SessionBatch(session)


@dataclass(frozen=True)
class Consumption:
    """What a service's worker does with events: a handler per event type it reacts to, and the unit
    of work they share in a transaction."""

    handlers: Mapping[str, Handler]
    open_batch: BatchOpener = open_session_batch


@dataclass(frozen=True)
class BatchItem:
    """A record of a batch, decoded, with its handler (no envelope or no handler: skipped)."""

    record: ConsumerRecord
    event_type: str
    envelope: Envelope | None = None
    handler: Handler | None = None


@dataclass(frozen=True)
class Applied:
    item: BatchItem
    outcome: str  # processed, duplicate or skipped
    seconds: float  # in the handler


class BatchFailed(Exception):
    def __init__(self, index: int | None, cause: Exception) -> None:
        super().__init__(repr(cause))
        self.index = index  # the record whose handler raised; None if it was no record's doing
        self.cause = cause


def bind_log_context(envelope: Envelope) -> None:
    order_id = getattr(envelope.event, "order_id", None)  # events about a product alone have none
    bind_context(
        event_id=str(envelope.event_id),
        event_type=envelope.event_type,
        correlation_id=envelope.correlation_id,
        order_id=None if order_id is None else str(order_id),
    )


def decode_batch(records: list[ConsumerRecord], handlers: Mapping[str, Handler]) -> list[BatchItem] | None:
    """The records with their handlers; None if one of them is unreadable (the batch goes the
    one-at-a-time way, which dead-letters that record in its place)."""
    items = []
    for record in records:
        try:
            envelope = decode(record.value, record.headers or ())
        except UnknownEventType as exc:
            items.append(BatchItem(record, str(exc.event_type)))
            continue
        except InvalidRecord:
            return None
        items.append(BatchItem(record, envelope.event_type, envelope, handlers.get(envelope.event_type)))
    return items


async def apply_one(
    sessions: async_sessionmaker[AsyncSession],
    consumer: str,
    envelope: Envelope,
    handler: Handler,
    open_batch: BatchOpener = open_session_batch,
) -> str:
    async with sessions() as session:
        async with session.begin():
            if not await _claim(session, consumer, [envelope.event_id]):
                return "duplicate"
            batch = await open_batch(session, [envelope])
            with processing(envelope, consumer):
                await handler(batch, envelope)
            await batch.flush()
        batch.committed()
    return "processed"


async def apply_batch(
    sessions: async_sessionmaker[AsyncSession],
    consumer: str,
    items: Sequence[BatchItem],
    open_batch: BatchOpener = open_session_batch,
) -> list[Applied]:
    """Handle the items in one transaction, in order. Raises BatchFailed (the transaction rolled back)."""
    applied: list[Applied] = []
    current: int | None = None
    try:
        async with sessions() as session:
            async with session.begin():
                handled = [i.envelope for i in items if i.envelope is not None and i.handler is not None]
                claimed = await _claim(session, consumer, [envelope.event_id for envelope in handled])
                batch = await open_batch(session, [envelope for envelope in handled if envelope.event_id in claimed])
                for index, item in enumerate(items):
                    current = index
                    applied.append(await _apply_item(batch, item, claimed, consumer))
                current = None
                await batch.flush()
            batch.committed()
    except Exception as exc:
        raise BatchFailed(current, exc) from exc
    return applied


# One statement of one shape for any number of events, prepared once per connection.
_CLAIM = """
    INSERT INTO processed_events (consumer, event_id) SELECT $1, unnest($2::uuid[])
    ON CONFLICT DO NOTHING RETURNING event_id
"""


async def _claim(session: AsyncSession, consumer: str, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Insert the events' dedup rows in one statement; the ids that were not there yet."""
    if not event_ids:
        return set()
    connection = await driver_connection(session)
    return {row[0] for row in await connection.fetch(_CLAIM, consumer, event_ids)}


async def _apply_item(batch: Batch, item: BatchItem, claimed: set[uuid.UUID], consumer: str) -> Applied:
    if item.envelope is None or item.handler is None:
        return Applied(item, "skipped", 0.0)  # an unknown event type, or one this service ignores
    if item.envelope.event_id not in claimed:
        return Applied(item, "duplicate", 0.0)  # processed before, or twice in this batch
    claimed.discard(item.envelope.event_id)
    bind_log_context(item.envelope)
    started = time.perf_counter()
    with processing(item.envelope, consumer, item.record):
        await item.handler(batch, item.envelope)
    return Applied(item, "processed", time.perf_counter() - started)


def processing(
    envelope: Envelope, consumer: str, record: ConsumerRecord | None = None
) -> AbstractContextManager[object]:
    """The record's process span (shared.tracing), current while its handler runs: each record its
    own, also in a batch, so the events a handler emits continue their own order's trace."""
    return process_span(
        traceparent=envelope.traceparent,
        topic=envelope.topic,
        key=envelope.key,
        event_id=str(envelope.event_id),
        consumer_group=consumer,
        partition=None if record is None else record.partition,
        offset=None if record is None else record.offset,
    )
