"""Loads and saves Order aggregates in a fixed number of statements, however many orders: the
event store is the truth, the projection follows it, and the outbox carries the same events to
`order-events`, all in one transaction.

A new order is one statement (`insert_new`). Every change of existing orders goes through the
service layer's unit of work (`OrderBatch`), which runs the statements below: lock the rows (one
statement), load the histories (one); then append the new events (one) and update the changed rows
(one), before the outbox rows (one)."""

from collections.abc import Collection, Iterable, Sequence
from datetime import UTC
from uuid import UUID

import orjson
from shared.db import driver_connection
from shared.events import Envelope
from shared.outbox.writer import outbox_row
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.domain import Order, RecordedEvent

from . import event_store, projection
from .event_store import StoredEvent
from .idempotency import Claim


async def lock(session: AsyncSession, order_ids: Collection[UUID]) -> dict[UUID, list[StoredEvent]]:
    """Lock the orders' rows until the transaction ends (in order id order, one statement) and load
    their histories (one statement). Ids of no order are absent."""
    return await load(session, await projection.lock(await driver_connection(session), order_ids))


async def load(session: AsyncSession, order_ids: Collection[UUID]) -> dict[UUID, list[StoredEvent]]:
    """The histories of orders whose rows the caller locked already, in one statement."""
    histories = await event_store.histories(await driver_connection(session), order_ids)
    # A row without events is kept, so that folding it reports the broken history.
    return {order_id: histories.get(order_id, []) for order_id in order_ids}


async def save(session: AsyncSession, events: Sequence[StoredEvent], changed: Iterable[Order]) -> None:
    """Append the new events of any number of orders (one statement; a version another writer took
    first raises ConcurrencyConflict) and overwrite the changed orders' rows (one statement); the
    rows are locked by the caller."""
    if events:  # an order changes only by recording events
        connection = await driver_connection(session)  # the transaction's, built once
        await event_store.append(connection, events)
        await projection.replace(connection, [projection.project(order) for order in changed])


async def insert_new(session: AsyncSession, order: Order, claim: Claim | None = None) -> bool:
    """Store a new order (its OrderCreated pending) in ONE statement, atomic on its own: claim its
    Idempotency-Key if it has one, append its OrderCreated, insert its projection row (the insert
    is its lock) and put the event in the outbox. False, and nothing written, when the key was
    claimed already. One statement instead of four, each a round trip to the database."""
    (created,) = order.pending_events
    envelope = envelope_for(created, None)
    event = event_store.stored_event(created, envelope)
    out = outbox_row(envelope)
    connection = await driver_connection(session)
    return bool(
        await connection.fetchval(
            _NEW_ORDER,
            *((claim.key, claim.request_hash, claim.order_id) if claim is not None else (None, None, None)),
            *(event.order_id, event.version, event.event_id, event.event_type, event.schema_version),
            *(orjson.dumps(event.data).decode(), event.occurred_at),  # jsonb parameters are JSON text
            *projection.driver_row(projection.project(order)),
            *(out["event_id"], out["event_type"], out["topic"], out["key"], out["value"]),
            orjson.dumps(out["headers"]).decode(),
            event.traceparent,
        )
    )


# `insert_new`'s statement, one text with or without a key. Data-modifying CTEs all run, on one
# snapshot: each insert takes its row only if `placement` says so, that is when there is no key or
# the claim took it. A concurrent request with the same key waits on the claim's insert until the
# first one commits (then finds its claim: nothing written) or rolls back (then claims the key
# itself), so exactly one order is created per key.
_NEW_ORDER = """
    WITH claimed AS (
        INSERT INTO idempotency_keys (key, request_hash, order_id)
        SELECT $1::text, $2::text, $3::uuid WHERE $1::text IS NOT NULL
        ON CONFLICT (key) DO NOTHING
        RETURNING key
    ), placement AS (
        SELECT $1::text IS NULL OR EXISTS (SELECT FROM claimed) AS placed
    ), new_event AS (
        INSERT INTO order_events (
            order_id, version, event_id, event_type, schema_version, data, occurred_at, traceparent
        )
        SELECT $4::uuid, $5::int, $6::uuid, $7::text, $8::int, $9::jsonb, $10::timestamptz, $29::text
        FROM placement WHERE placed
    ), new_row AS (
        INSERT INTO orders (
            order_id, customer_id, status, items, total_amount, currency, version,
            cancellation_reason, rejection_reason, payment_id, created_at, updated_at
        )
        SELECT $11::uuid, $12::text, $13::text, $14::jsonb, $15::bigint, $16::text, $17::int,
            $18::text, $19::text, $20::uuid, $21::timestamptz, $22::timestamptz
        FROM placement WHERE placed
    ), new_outbox AS (
        INSERT INTO outbox (event_id, event_type, topic, key, value, headers)
        SELECT $23::uuid, $24::text, $25::text, $26::text, $27::bytea, $28::jsonb
        FROM placement WHERE placed
    )
    SELECT placed FROM placement
"""


def envelope_for(recorded: RecordedEvent, caused_by: Envelope | None) -> Envelope:
    """The event's envelope, stamped with the time the domain recorded (the store's occurred_at)."""
    envelope = Envelope.new(recorded.event, caused_by=caused_by)
    return envelope.model_copy(update={"occurred_at": recorded.occurred_at.astimezone(UTC)})
