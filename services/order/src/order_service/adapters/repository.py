"""Loads and saves Order aggregates in a fixed number of statements, however many orders: the
event store is the truth, the projection follows it, and the outbox carries the same events to
`order-events`, all in one transaction.

A new order is one statement (`insert_new`). Every change of existing orders (the worker's batches
of events, the saga deadline's sweep, a customer's cancel) goes through one unit of work,
`OrderBatch`: lock the rows (one statement), load the histories (one); then append the new events
(one), update the changed rows (one) and add the outbox rows (one)."""

from collections.abc import Collection, Mapping
from datetime import UTC
from uuid import UUID

import orjson
from shared.consumer import SessionBatch
from shared.db import driver_connection
from shared.events import Envelope
from shared.outbox.writer import outbox_row
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.domain import Order, RecordedEvent

from . import event_store, projection
from .event_store import StoredEvent
from .idempotency import Claim


class OrderBatch(SessionBatch):
    """The orders a transaction works on and what it changed in them. Callers apply the domain's
    rules to `get(order_id)` (an order changed earlier in the transaction is seen as changed) and
    `record` what the order recorded; `flush` writes only the orders that changed."""

    def __init__(self, session: AsyncSession, histories: Mapping[UUID, list[StoredEvent]] | None = None) -> None:
        super().__init__(session)
        self._histories = dict(histories or {})  # the loaded orders' stored events
        self._orders: dict[UUID, Order] = {}
        self._noted: dict[UUID, int] = {}  # how many of an order's pending events are recorded here
        self._events: list[StoredEvent] = []
        self._changed: dict[UUID, Order] = {}

    def get(self, order_id: UUID) -> Order | None:
        """The order as this transaction has left it so far; None if it was not loaded (no such
        order). Folded on first use: raises CorruptHistory, or pydantic's ValidationError, for a
        history that cannot be folded, so one broken order fails only whoever touches it."""
        order = self._orders.get(order_id)
        if order is None and order_id in self._histories:
            order = Order.from_history(event_store.recorded_history(self._histories[order_id]))
            self._orders[order_id] = order
        return order

    def record(self, order: Order, caused_by: Envelope | None = None) -> None:
        """Note the events `order` recorded since the last call, each caused by `caused_by`: they
        go to the event store and, with the same ids and times, to the outbox."""
        pending = order.pending_events
        new = pending[self._noted.get(order.order_id, 0) :]
        if not new:
            return
        self._noted[order.order_id] = len(pending)
        envelopes = [envelope_for(recorded, caused_by) for recorded in new]
        self._events.extend(event_store.stored_event(r, e) for r, e in zip(new, envelopes, strict=True))
        self.emit(*envelopes)
        self._changed[order.order_id] = order

    async def flush(self) -> None:
        """Append the new events (a version another writer took first raises ConcurrencyConflict),
        overwrite the changed orders' rows, add the outbox rows."""
        events, self._events = self._events, []
        changed, self._changed = list(self._changed.values()), {}
        if events:  # an order changes only by recording events
            connection = await driver_connection(self.session)  # the transaction's, built once
            await event_store.append(connection, events)
            await projection.replace(connection, [projection.project(order) for order in changed])
        await super().flush()


async def lock_orders(session: AsyncSession, order_ids: Collection[UUID]) -> OrderBatch:
    """The orders, their rows locked until the transaction ends (in order id order, one statement)
    and their histories loaded (one statement), so their changes and outbox rows are serialized in
    commit order. Ids of no order are simply not in the batch."""
    return await locked_orders(session, await projection.lock(await driver_connection(session), order_ids))


async def locked_orders(session: AsyncSession, order_ids: Collection[UUID]) -> OrderBatch:
    """The orders whose rows the caller locked already, their histories loaded in one statement."""
    histories = await event_store.histories(await driver_connection(session), order_ids)
    # A row without events is kept, so that folding it reports the broken history.
    return OrderBatch(session, {order_id: histories.get(order_id, []) for order_id in order_ids})


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
        INSERT INTO order_events (order_id, version, event_id, event_type, schema_version, data, occurred_at)
        SELECT $4::uuid, $5::int, $6::uuid, $7::text, $8::int, $9::jsonb, $10::timestamptz
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
