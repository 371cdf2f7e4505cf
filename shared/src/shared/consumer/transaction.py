"""What one worker transaction does: claim the events in processed_events (a conflict means the
effect is already committed), run the handlers of the claimed ones, in order, then commit.

One record, or a batch of one partition's records: the batch claims all its events in one
statement (`INSERT ... ON CONFLICT DO NOTHING RETURNING event_id`) and runs their handlers in one
transaction; the worker handles a failed batch again one record at a time.
"""

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events.base import Envelope
from shared.events.codec import InvalidRecord, UnknownEventType, decode
from shared.logging import bind_context
from shared.outbox.tables import processed_events

Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]
# Takes, at the start of a batch's transaction, every row lock the batch's handlers will take, in the
# service's one lock order: handlers that each lock in that order can still deadlock when several
# run in one transaction (the first holds product B while the second wants A; another batch the reverse).
BatchLocker = Callable[[AsyncSession, Sequence[Envelope]], Awaitable[None]]


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
    bind_context(
        event_id=str(envelope.event_id),
        event_type=envelope.event_type,
        correlation_id=envelope.correlation_id,
        order_id=getattr(envelope.event, "order_id", None) and str(envelope.event.order_id),  # type: ignore[attr-defined]
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
    sessions: async_sessionmaker[AsyncSession], consumer: str, envelope: Envelope, handler: Handler
) -> str:
    async with sessions() as session, session.begin():
        if not await _claim(session, consumer, [envelope.event_id]):
            return "duplicate"
        await handler(session, envelope)
    return "processed"


async def apply_batch(
    sessions: async_sessionmaker[AsyncSession],
    consumer: str,
    items: list[BatchItem],
    stopping: Callable[[], bool],
    lock_batch: BatchLocker | None = None,
) -> list[Applied]:
    """Handle the items in one transaction; once `stopping()`, after the record in hand, commit what
    is done and give back the claims of the rest. Raises BatchFailed (the transaction rolled back)."""
    applied: list[Applied] = []
    current: int | None = None
    try:
        async with sessions() as session, session.begin():
            claimed = await _claim(session, consumer, [i.envelope.event_id for i in items if i.envelope and i.handler])
            if lock_batch is not None and claimed:
                await lock_batch(session, [i.envelope for i in items if i.envelope and i.envelope.event_id in claimed])
            for index, item in enumerate(items):
                if index and stopping():
                    break
                current = index
                applied.append(await _apply_item(session, item, claimed))
            current = None
            if claimed:  # stopped part-way: these records were not handled
                await session.execute(
                    delete(processed_events).where(
                        processed_events.c.consumer == consumer, processed_events.c.event_id.in_(claimed)
                    )
                )
    except Exception as exc:
        raise BatchFailed(current, exc) from exc
    return applied


async def _claim(session: AsyncSession, consumer: str, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Insert the events' dedup rows in one statement; the ids that were not there yet."""
    if not event_ids:
        return set()
    inserted = await session.execute(
        pg_insert(processed_events)
        .values([{"consumer": consumer, "event_id": event_id} for event_id in event_ids])
        .on_conflict_do_nothing()
        .returning(processed_events.c.event_id)
    )
    return set(inserted.scalars())


async def _apply_item(session: AsyncSession, item: BatchItem, claimed: set[uuid.UUID]) -> Applied:
    if item.envelope is None or item.handler is None:
        return Applied(item, "skipped", 0.0)  # an unknown event type, or one this service ignores
    if item.envelope.event_id not in claimed:
        return Applied(item, "duplicate", 0.0)  # processed before, or twice in this batch
    claimed.discard(item.envelope.event_id)
    bind_log_context(item.envelope)
    started = time.perf_counter()
    await item.handler(session, item.envelope)
    return Applied(item, "processed", time.perf_counter() - started)
