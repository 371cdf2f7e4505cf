"""Loads and saves Order aggregates, any number of them in one transaction, in a fixed number of
statements: the event store is the truth, the projection follows it, and the outbox carries the same
events to `order-events`, all in the caller's transaction.

One unit of work serves every writer: the worker's batches of events, the saga deadline's sweep, a
customer's cancel and a new order. Its statements do not grow with the number of orders: lock the
rows (one), load the histories (one); then append the new events (one), insert the new orders' rows
(one), update the changed rows (one) and add the outbox rows (one)."""

from collections.abc import Collection, Mapping
from datetime import UTC
from uuid import UUID

from shared.consumer import SessionBatch
from shared.events import Envelope
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.domain import Order, RecordedEvent

from . import event_store, projection
from .event_store import StoredEvent

SOURCE = "order"


class OrderBatch(SessionBatch):
    """The orders a transaction works on and what it changed in them. Callers apply the domain's
    rules to `get(order_id)` (an order changed earlier in the transaction is seen as changed) and
    `record` what the order recorded; `flush` writes only the orders that changed."""

    def __init__(self, session: AsyncSession, histories: Mapping[UUID, list[StoredEvent]] | None = None) -> None:
        super().__init__(session)
        self._histories = dict(histories or {})  # the loaded orders' stored events (rows exist)
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

    def add(self, order: Order) -> None:
        """A new order (its OrderCreated pending): its row is inserted at flush."""
        self._orders[order.order_id] = order
        self.record(order)

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
        insert the new orders' rows, overwrite the changed ones, add the outbox rows."""
        events, self._events = self._events, []
        changed, self._changed = list(self._changed.values()), {}
        new = [projection.project(o) for o in changed if o.order_id not in self._histories]
        existing = [projection.project(o) for o in changed if o.order_id in self._histories]
        await event_store.append(self.session, events)
        await projection.insert_many(self.session, new)
        await projection.replace(self.session, existing)
        self._histories.update({p.order_id: [] for p in new})  # their rows exist now
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


def envelope_for(recorded: RecordedEvent, caused_by: Envelope | None) -> Envelope:
    """The event's envelope, stamped with the time the domain recorded (the store's occurred_at)."""
    envelope = Envelope.new(recorded.event, source=SOURCE, caused_by=caused_by)
    return envelope.model_copy(update={"occurred_at": recorded.occurred_at.astimezone(UTC)})
