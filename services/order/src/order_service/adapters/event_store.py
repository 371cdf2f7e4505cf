"""The event store: each order's events, appended in version order, read back to fold the order."""

from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from shared.events import Envelope
from shared.events.registry import event_class
from sqlalchemy import ARRAY, Uuid, any_, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.domain import CorruptHistory, OrderEvent, RecordedEvent

from .tables import order_events

UNIQUE_VIOLATION = "23505"
VERSION_CONSTRAINT = "order_events_pkey"


class ConcurrencyConflict(Exception):
    """Another writer appended the same version of the order first; retrying reloads the order."""

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} was changed concurrently; try again")
        self.order_id = order_id


@dataclass(frozen=True)
class StoredEvent:
    """One row of the event store, as the audit trail shows it."""

    order_id: UUID
    version: int
    event_id: UUID
    event_type: str
    schema_version: int
    data: dict[str, Any]
    occurred_at: datetime

    def recorded(self) -> RecordedEvent:
        cls = event_class(self.event_type, self.schema_version)
        if cls is None:
            raise CorruptHistory(
                f"order {self.order_id} v{self.version}: unknown {self.event_type} v{self.schema_version}"
            )
        event = cast(OrderEvent, cls.model_validate(self.data))
        return RecordedEvent(version=self.version, event=event, occurred_at=self.occurred_at)


def stored_event(recorded: RecordedEvent, envelope: Envelope) -> StoredEvent:
    """The row for a new event; it shares the outbox envelope's id and time, so the topic's
    events are exactly the store's."""
    event = recorded.event
    return StoredEvent(
        order_id=event.order_id,
        version=recorded.version,
        event_id=envelope.event_id,
        event_type=event.event_type,
        schema_version=event.schema_version,
        data=event.model_dump(mode="json"),
        occurred_at=envelope.occurred_at,
    )


def to_row(event: StoredEvent) -> dict[str, Any]:
    return {field.name: getattr(event, field.name) for field in fields(event)}


async def append(session: AsyncSession, events: Sequence[StoredEvent]) -> None:
    """Append new events, of any number of orders, in one statement; raises ConcurrencyConflict if
    one of their versions is already taken (the whole statement fails: nothing is appended)."""
    if not events:
        return
    try:
        await session.execute(insert(order_events), [to_row(event) for event in events])
    except IntegrityError as error:
        taken = _order_whose_version_is_taken(error, events)
        if taken is not None:
            raise ConcurrencyConflict(taken) from error
        raise


async def history(session: AsyncSession, order_id: UUID) -> list[StoredEvent]:
    """The order's events, oldest first (empty for an unknown order)."""
    return (await histories(session, [order_id])).get(order_id, [])


async def histories(session: AsyncSession, order_ids: Collection[UUID]) -> dict[UUID, list[StoredEvent]]:
    """The orders' events, oldest first, in one statement; unknown orders are absent."""
    if not order_ids:
        return {}
    result = await session.execute(
        select(order_events)
        .where(order_events.c.order_id == any_(bindparam("order_ids", type_=ARRAY(Uuid))))
        .order_by(order_events.c.order_id, order_events.c.version),
        {"order_ids": list(order_ids)},  # one array: the same statement for any number of ids
    )
    found: dict[UUID, list[StoredEvent]] = {}
    for row in result.mappings():
        found.setdefault(row["order_id"], []).append(StoredEvent(**row))
    return found


async def all_histories(session: AsyncSession, batch_size: int = 5000) -> AsyncIterator[list[StoredEvent]]:
    """Every order's history, one order at a time, streamed (for rebuilding the projection)."""
    result = await session.stream(
        select(order_events)
        .order_by(order_events.c.order_id, order_events.c.version)
        .execution_options(yield_per=batch_size)
    )
    current: list[StoredEvent] = []
    async for row in result.mappings():
        event = StoredEvent(**row)
        if current and current[0].order_id != event.order_id:
            yield current
            current = []
        current.append(event)
    if current:
        yield current


def recorded_history(events: Iterable[StoredEvent]) -> list[RecordedEvent]:
    return [event.recorded() for event in events]


def _order_whose_version_is_taken(error: IntegrityError, events: Sequence[StoredEvent]) -> UUID | None:
    """The order of the taken version if `error` is the version check's; None if it is another."""
    # asyncpg's exception (the adapted one's cause) names the violated constraint, and its detail
    # the key: "Key (order_id, version)=(<uuid>, <n>) already exists."
    cause = getattr(error.orig, "__cause__", None)
    if getattr(error.orig, "sqlstate", None) != UNIQUE_VIOLATION:
        return None
    if getattr(cause, "constraint_name", None) != VERSION_CONSTRAINT:
        return None
    detail = str(getattr(cause, "detail", "") or "")
    return next((e.order_id for e in events if str(e.order_id) in detail), events[0].order_id)
