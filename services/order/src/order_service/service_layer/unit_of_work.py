"""The unit of work of every transaction that changes existing orders (the worker's batches of
events, the saga deadline's sweep, a customer's cancel): `OrderBatch`, the orders it touches locked
and their histories loaded up front, in the statements the repository keeps for it (lock the rows:
one; load the histories: one); the domain's rules applied to the folded orders in memory; then the
new events (one statement), the changed projection rows (one) and the outbox rows (one) written
together at flush, however many orders the transaction holds."""

from collections.abc import Collection, Mapping, Sequence
from uuid import UUID

from shared.consumer import SessionBatch
from shared.events import Envelope
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.adapters import event_store, repository
from order_service.adapters.event_store import StoredEvent
from order_service.domain import Order


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

    def last_traceparent(self, order_id: UUID) -> str | None:
        """The trace the order's last stored event was written in (None if it kept none)."""
        history = self._histories.get(order_id)
        return history[-1].traceparent if history else None

    def record(self, order: Order, caused_by: Envelope | None = None) -> None:
        """Note the events `order` recorded since the last call, each caused by `caused_by`: they
        go to the event store and, with the same ids and times, to the outbox."""
        pending = order.pending_events
        new = pending[self._noted.get(order.order_id, 0) :]
        if not new:
            return
        self._noted[order.order_id] = len(pending)
        envelopes = [repository.envelope_for(recorded, caused_by) for recorded in new]
        self._events.extend(map(event_store.stored_event, new, envelopes))
        self.emit(*envelopes)
        self._changed[order.order_id] = order

    async def flush(self) -> None:
        """Append the new events (a version another writer took first raises ConcurrencyConflict),
        overwrite the changed orders' rows, add the outbox rows."""
        events, self._events = self._events, []
        changed, self._changed = list(self._changed.values()), {}
        await repository.save(self.session, events, changed)
        await super().flush()


async def lock_orders(session: AsyncSession, order_ids: Collection[UUID]) -> OrderBatch:
    """The orders, their rows locked until the transaction ends (in order id order) and their
    histories loaded, so their changes and outbox rows are serialized in commit order. Ids of no
    order are simply not in the batch."""
    return OrderBatch(session, await repository.lock(session, order_ids))


async def locked_orders(session: AsyncSession, order_ids: Collection[UUID]) -> OrderBatch:
    """The orders whose rows the caller locked already, their histories loaded."""
    return OrderBatch(session, await repository.load(session, order_ids))


async def open_batch(session: AsyncSession, envelopes: Sequence[Envelope]) -> OrderBatch:
    """The worker's unit of work: every order the batch's events name, locked and loaded up front."""
    order_ids = {getattr(envelope.event, "order_id", None) for envelope in envelopes}
    return await lock_orders(session, [order_id for order_id in order_ids if isinstance(order_id, UUID)])
