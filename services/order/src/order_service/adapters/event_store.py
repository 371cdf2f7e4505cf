"""The event store: each order's events, appended in version order, read back to fold the order."""

from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from shared.db import DriverConnection, driver_connection
from shared.events import Envelope
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.domain import ConcurrencyConflict, CorruptHistory, RecordedEvent

from .tables import order_events
from .upcasting import current_event

VERSION_CONSTRAINT = "order_events_pkey"


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
    # The trace the event was written in (its envelope's traceparent): what work done later on the
    # order's behalf, the saga deadline's, continues. None for events stored before it was kept.
    traceparent: str | None = None

    def recorded(self) -> RecordedEvent:
        """The event as the domain folds it, upcast from the schema version it was stored under.
        Raises CorruptHistory (naming the order, the event's version, type and schema version) or
        pydantic's ValidationError when it cannot be."""
        try:
            event = current_event(self.event_type, self.schema_version, self.data)
        except CorruptHistory as error:
            raise CorruptHistory(f"order {self.order_id}, event {self.version}: {error}") from None
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
        traceparent=envelope.traceparent,
    )


def to_row(event: StoredEvent) -> dict[str, Any]:
    return {field.name: getattr(event, field.name) for field in fields(event)}


# The worker's statements are SQL texts run on the driver (shared.db.driver_connection), one text
# whatever the number of events or orders (arrays as parameters), so asyncpg prepares each once per
# connection and no statement is built per call.
_APPEND = """
    INSERT INTO order_events (order_id, version, event_id, event_type, schema_version, data, occurred_at, traceparent)
    SELECT * FROM unnest(
        $1::uuid[], $2::int[], $3::uuid[], $4::text[], $5::int[], $6::jsonb[], $7::timestamptz[], $8::text[]
    )
"""

_HISTORIES = """
    SELECT order_id, version, event_id, event_type, schema_version, data, occurred_at, traceparent
    FROM order_events
    WHERE order_id = ANY($1::uuid[])
    ORDER BY order_id, version
"""


async def append(connection: DriverConnection, events: Sequence[StoredEvent]) -> None:
    """Append new events, of any number of orders, in one statement; raises ConcurrencyConflict if
    one of their versions is already taken (the whole statement fails: nothing is appended)."""
    if not events:
        return
    try:
        await connection.execute(
            _APPEND,
            [event.order_id for event in events],
            [event.version for event in events],
            [event.event_id for event in events],
            [event.event_type for event in events],
            [event.schema_version for event in events],
            [orjson.dumps(event.data).decode() for event in events],  # jsonb parameters are JSON text
            [event.occurred_at for event in events],
            [event.traceparent for event in events],
        )
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != VERSION_CONSTRAINT:
            raise
        raise ConcurrencyConflict(_order_whose_version_is_taken(error, events)) from error


async def history(session: AsyncSession, order_id: UUID) -> list[StoredEvent]:
    """The order's events, oldest first (empty for an unknown order)."""
    return (await histories(await driver_connection(session), [order_id])).get(order_id, [])


async def histories(connection: DriverConnection, order_ids: Collection[UUID]) -> dict[UUID, list[StoredEvent]]:
    """The orders' events, oldest first, in one statement; unknown orders are absent."""
    if not order_ids:
        return {}
    found: dict[UUID, list[StoredEvent]] = {}
    for row in await connection.fetch(_HISTORIES, list(order_ids)):
        found.setdefault(row["order_id"], []).append(StoredEvent(*row))  # the columns in field order
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


def _order_whose_version_is_taken(error: asyncpg.UniqueViolationError, events: Sequence[StoredEvent]) -> UUID:
    """The order whose version was taken, named in the error's detail, "Key (order_id, version)=
    (<uuid>, <n>) already exists."; the first event's order if the detail is missing."""
    detail = str(error.detail or "")
    return next((e.order_id for e in events if str(e.order_id) in detail), events[0].order_id)
