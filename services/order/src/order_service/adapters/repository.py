"""Loads and saves Order aggregates: the event store is the truth, the projection follows it, and
the outbox carries the same events to `order-events`, all in the caller's transaction."""

from datetime import UTC
from uuid import UUID

from shared.events import Envelope
from shared.outbox import add_to_outbox
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.domain import Order, RecordedEvent

from . import event_store, projection

SOURCE = "order"


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_for_update(self, order_id: UUID) -> Order | None:
        """The order folded from its events, its row locked until the transaction ends, so its
        changes (and their outbox rows) are serialized in commit order."""
        if not await projection.lock(self._session, order_id):
            return None
        history = await event_store.history(self._session, order_id)
        return Order.from_history(event_store.recorded_history(history))

    async def save(self, order: Order, *, caused_by: Envelope | None = None) -> None:
        """Append the order's pending events, write its projection row and put the events in the
        outbox. A new order (nothing persisted yet) is inserted: the insert is its lock."""
        pending = order.pending_events
        if not pending:
            return
        envelopes = [envelope_for(recorded, caused_by) for recorded in pending]
        await event_store.append(
            self._session,
            [
                event_store.stored_event(recorded, envelope)
                for recorded, envelope in zip(pending, envelopes, strict=True)
            ],
        )
        if order.persisted_version == 0:
            await projection.insert_new(self._session, projection.project(order))
        else:
            await projection.replace(self._session, projection.project(order))
        await add_to_outbox(self._session, *envelopes)


def envelope_for(recorded: RecordedEvent, caused_by: Envelope | None) -> Envelope:
    """The event's envelope, stamped with the time the domain recorded (the store's occurred_at)."""
    envelope = Envelope.new(recorded.event, source=SOURCE, caused_by=caused_by)
    return envelope.model_copy(update={"occurred_at": recorded.occurred_at.astimezone(UTC)})
