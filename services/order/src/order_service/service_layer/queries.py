"""Reads: the projection for the current state, the event store for history and time travel.

`owner`: the customer asking, who may see only its own orders; another customer's order is an
OrderNotFound like one that does not exist, with the same message, so that its existence does not
leak. None reads any order (support, admin)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from shared.events.base import utc_now
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.adapters import event_store, projection
from order_service.adapters.cursor import UnreadableCursor, decode_cursor, encode_cursor
from order_service.adapters.event_store import StoredEvent
from order_service.adapters.projection import ProjectedOrder
from order_service.domain import OrderStatus, state_at

from .errors import InvalidCursor, OrderNotFound


@dataclass(frozen=True)
class Page:
    items: list[ProjectedOrder]
    next_cursor: str | None


async def get_order(session: AsyncSession, order_id: UUID, *, owner: str | None = None) -> ProjectedOrder:
    found = await projection.get(session, order_id)
    if found is None or owner not in (None, found.customer_id):
        raise OrderNotFound(order_id)
    return found


async def get_order_at(
    session: AsyncSession,
    order_id: UUID,
    *,
    version: int | None = None,
    as_of: datetime | None = None,
    owner: str | None = None,
) -> ProjectedOrder:
    """The order as it was after `version` events or at time `as_of`, folded from the event store."""
    history = await _owned_history(session, order_id, owner)
    if version is not None and version > history[-1].version:
        raise OrderNotFound(
            order_id, f"order {order_id} has no version {version} (its latest is {history[-1].version})"
        )
    order = state_at(event_store.recorded_history(history), version=version, as_of=as_of)
    if order is None:
        raise OrderNotFound(order_id, f"order {order_id} did not exist yet at {as_of.isoformat() if as_of else '?'}")
    return projection.project(order)


async def get_history(session: AsyncSession, order_id: UUID, *, owner: str | None = None) -> list[StoredEvent]:
    return await _owned_history(session, order_id, owner)


async def _owned_history(session: AsyncSession, order_id: UUID, owner: str | None) -> list[StoredEvent]:
    """The order's stored events, if it exists and `owner` may see it. Ownership is checked on the
    whole history (its latest state), before any time travel: an earlier moment of another
    customer's order must be refused the same way as the order itself."""
    history = await event_store.history(session, order_id)
    if not history:
        raise OrderNotFound(order_id)
    if owner is not None:
        latest = state_at(event_store.recorded_history(history))
        if latest is None or latest.customer_id != owner:
            raise OrderNotFound(order_id)
    return history


async def list_orders(
    session: AsyncSession,
    *,
    limit: int,
    customer_id: str | None = None,
    status: OrderStatus | None = None,
    cursor: str | None = None,
) -> Page:
    """Newest first. Raises InvalidCursor for a cursor this API did not hand out."""
    try:
        after = decode_cursor(cursor) if cursor is not None else None
    except UnreadableCursor:
        raise InvalidCursor() from None
    rows, last = await projection.page(session, limit=limit, customer_id=customer_id, status=status, after=after)
    return Page(rows, encode_cursor(last) if last is not None else None)


async def count_overdue_orders(session: AsyncSession, deadline: timedelta, *, now: datetime | None = None) -> int:
    """Orders still waiting for inventory or payment `deadline` after they were placed: the ones the
    saga deadline sweep (handlers.time_out_overdue_orders) should cancel and has not yet."""
    return await projection.count_overdue(session, placed_before=(now or utc_now()) - deadline)
