"""Loads and saves Order aggregates in a fixed number of statements, however many orders: the
event store is the truth, the projection follows it, and the outbox carries the same events to
`order-events`, all in one transaction.

A new order is one statement (`insert_new`). Every change of existing orders (the worker's batches
of events, the saga deadline's sweep, a customer's cancel) goes through one unit of work,
`OrderBatch`: lock the rows (one statement), load the histories (one); then append the new events
(one), update the changed rows (one) and add the outbox rows (one)."""

import functools
from collections.abc import Collection, Mapping
from datetime import UTC
from typing import Any
from uuid import UUID

from shared.consumer import SessionBatch
from shared.events import Envelope
from shared.outbox.tables import outbox
from shared.outbox.writer import outbox_row
from sqlalchemy import Select, Table, bindparam, exists, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.domain import Order, RecordedEvent

from . import event_store, idempotency, projection
from .event_store import StoredEvent
from .idempotency import Claim
from .tables import order_events, orders

SOURCE = "order"


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
        await event_store.append(self.session, events)
        await projection.replace(self.session, [projection.project(order) for order in changed])
        await super().flush()


async def lock_orders(session: AsyncSession, order_ids: Collection[UUID]) -> OrderBatch:
    """The orders, their rows locked until the transaction ends (in order id order, one statement)
    and their histories loaded (one statement), so their changes and outbox rows are serialized in
    commit order. Ids of no order are simply not in the batch."""
    return await locked_orders(session, await projection.lock(session, order_ids))


async def locked_orders(session: AsyncSession, order_ids: Collection[UUID]) -> OrderBatch:
    """The orders whose rows the caller locked already, their histories loaded in one statement."""
    histories = await event_store.histories(session, order_ids)
    # A row without events is kept, so that folding it reports the broken history.
    return OrderBatch(session, {order_id: histories.get(order_id, []) for order_id in order_ids})


async def insert_new(session: AsyncSession, order: Order, claim: Claim | None = None) -> bool:
    """Store a new order (its OrderCreated pending) in ONE statement, atomic on its own: claim its
    Idempotency-Key if it has one, append its OrderCreated, insert its projection row (the insert
    is its lock) and put the event in the outbox. False, and nothing written, when the key was
    claimed already. One statement instead of four, each a round trip to the database."""
    (created,) = order.pending_events
    envelope = envelope_for(created, None)
    rows = {
        order_events: event_store.to_row(event_store.stored_event(created, envelope)),
        orders: projection.to_row(projection.project(order)),
        outbox: outbox_row(envelope),
    }
    statement = _new_order_statement(claim is not None, tuple((table, tuple(row)) for table, row in rows.items()))
    parameters = {_parameter(table, name): value for table, row in rows.items() for name, value in row.items()}
    if claim is not None:
        parameters |= idempotency.claim_parameters(claim)
    return bool((await session.execute(statement, parameters)).scalar_one())


@functools.cache
def _new_order_statement(claiming: bool, columns: tuple[tuple[Table, tuple[str, ...]], ...]) -> Select[Any]:
    """`insert_new`'s statement, built once (building and keying it cost more CPU than running it).
    Data-modifying CTEs all run: with a key, each insert takes its row only if the claim did."""
    only_if = exists(select(idempotency.claiming().c.key)) if claiming else None
    writes = []
    for table, names in columns:
        values = [bindparam(_parameter(table, name), type_=table.c[name].type) for name in names]
        if only_if is None:
            write = insert(table).values(dict(zip(names, values, strict=True)))
        else:
            write = insert(table).from_select(list(names), select(*values).where(only_if))
        writes.append(write.cte(f"new_{table.name}"))
    answer = select(only_if if only_if is not None else literal(True))
    return answer.add_cte(*writes)


def _parameter(table: Table, column: str) -> str:
    return f"{table.name}_{column}"


def envelope_for(recorded: RecordedEvent, caused_by: Envelope | None) -> Envelope:
    """The event's envelope, stamped with the time the domain recorded (the store's occurred_at)."""
    envelope = Envelope.new(recorded.event, source=SOURCE, caused_by=caused_by)
    return envelope.model_copy(update={"occurred_at": recorded.occurred_at.astimezone(UTC)})
