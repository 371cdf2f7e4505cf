"""The orders projection: one row per order holding its current state, derived from its events.

`project` is the one mapping from a folded Order to a row; the write path, time travel and both
rebuilds use it, so "the projection equals the fold" is checked against the same definition.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from shared.db import DriverConnection
from sqlalchemy import bindparam, delete, func, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from order_service.domain import AWAITING_AN_ANSWER, Order, OrderItem, OrderStatus

from .tables import orders


@dataclass(frozen=True)
class ProjectedOrder:
    order_id: UUID
    customer_id: str
    status: OrderStatus
    items: tuple[OrderItem, ...]
    total_amount: int | None
    currency: str | None
    version: int
    cancellation_reason: str | None
    rejection_reason: str | None
    payment_id: UUID | None
    created_at: datetime
    updated_at: datetime

    def differences(self, other: "ProjectedOrder") -> list[tuple[str, Any, Any]]:
        """(field, mine, theirs) for every field in which the two rows differ, in column order."""
        return [
            (f.name, getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


@dataclass(frozen=True)
class Keyset:
    """Where a page ends: the listing continues with orders strictly older than this one."""

    created_at: datetime
    order_id: UUID


def project(order: Order) -> ProjectedOrder:
    return ProjectedOrder(
        order_id=order.order_id,
        customer_id=order.customer_id,
        status=order.status,
        items=order.items,
        total_amount=order.total_amount,
        currency=order.currency,
        version=order.version,
        cancellation_reason=order.cancellation_reason,
        rejection_reason=order.rejection_reason,
        payment_id=order.payment_id,
        created_at=order.created_at,
        updated_at=order.updated_at,
    )


def to_row(projected: ProjectedOrder) -> dict[str, Any]:
    # Spelled out: runs for every changed order, and dataclasses.asdict's generic recursion was the
    # largest single cost of a batch's flush.
    row = {name: getattr(projected, name) for name in _COLUMNS}
    row["status"] = projected.status.value
    row["items"] = [{"sku": i.sku, "quantity": i.quantity, "unit_price": i.unit_price} for i in projected.items]
    return row


_COLUMNS = tuple(f.name for f in fields(ProjectedOrder))  # the table's columns, in its order


def from_row(row: Any) -> ProjectedOrder:
    values = dict(row)
    values["status"] = OrderStatus(values["status"])
    values["items"] = tuple(
        OrderItem(sku=item["sku"], quantity=item["quantity"], unit_price=item.get("unit_price"))
        for item in values["items"]
    )
    return ProjectedOrder(**values)


# The worker's statements are SQL texts run on the driver (shared.db.driver_connection), one text
# whatever the number of orders (arrays as parameters), so asyncpg prepares each once per connection.
_LOCK = """
    SELECT order_id FROM orders WHERE order_id = ANY($1::uuid[]) ORDER BY order_id FOR UPDATE
"""


async def lock(connection: DriverConnection, order_ids: Collection[UUID]) -> set[UUID]:
    """Lock the orders' rows until the transaction ends, in order id order (the service's one lock
    order, so two transactions locking overlapping sets never wait on each other in a cycle); the
    ids of the orders that exist."""
    if not order_ids:
        return set()
    return {row[0] for row in await connection.fetch(_LOCK, list(order_ids))}


_AWAITING = sorted(status.value for status in AWAITING_AN_ANSWER)


async def lock_overdue(session: AsyncSession, *, placed_before: datetime, limit: int) -> list[UUID]:
    """Orders still waiting for an answer that were placed before `placed_before`, oldest first,
    their rows locked until the transaction ends. Rows another transaction holds (a worker handling
    an answer, a customer's cancel, another sweep) are skipped, not waited for: two sweeps never
    take the same order, and the next sweep sees whatever the holder left."""
    result = await session.execute(
        select(orders.c.order_id)
        # Literal values, not parameters: a prepared statement's generic plan can use the partial
        # index of the orders awaiting an answer only if it sees its predicate's values.
        .where(orders.c.status.in_(bindparam("awaiting", _AWAITING, expanding=True, literal_execute=True)))
        .where(orders.c.created_at < placed_before)
        .order_by(orders.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(result.scalars())


async def count_overdue(session: AsyncSession, *, placed_before: datetime) -> int:
    """How many orders still waiting for an answer were placed before `placed_before` (an index-only
    scan of the partial index of the orders awaiting an answer)."""
    result = await session.execute(
        select(func.count())
        .select_from(orders)
        .where(orders.c.status.in_(bindparam("awaiting", _AWAITING, expanding=True, literal_execute=True)))
        .where(orders.c.created_at < placed_before)
    )
    return int(result.scalar_one())


_REPLACE = """
    UPDATE orders SET
        customer_id = new.customer_id, status = new.status, items = new.items,
        total_amount = new.total_amount, currency = new.currency, version = new.version,
        cancellation_reason = new.cancellation_reason, rejection_reason = new.rejection_reason,
        payment_id = new.payment_id, created_at = new.created_at, updated_at = new.updated_at
    FROM unnest(
        $1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bigint[], $6::text[], $7::int[],
        $8::text[], $9::text[], $10::uuid[], $11::timestamptz[], $12::timestamptz[]
    ) AS new (
        order_id, customer_id, status, items, total_amount, currency, version,
        cancellation_reason, rejection_reason, payment_id, created_at, updated_at
    )
    WHERE orders.order_id = new.order_id
"""


async def replace(connection: DriverConnection, projected: Sequence[ProjectedOrder]) -> None:
    """Overwrite the orders' rows (one each: no order twice) with the fold of the store: the
    projection follows the events, so a row that had drifted is corrected by the next change. The
    rows are locked by the caller. One statement whatever the number of rows."""
    if projected:
        await connection.execute(_REPLACE, *_columns(projected))


def driver_row(projected: ProjectedOrder) -> list[Any]:
    """The row's values in the table's column order, as the driver's parameters want them (items as
    JSON text: jsonb parameters are text on the driver)."""
    row = to_row(projected)
    row["items"] = orjson.dumps(row["items"]).decode()
    return list(row.values())


def _columns(projected: Sequence[ProjectedOrder]) -> list[list[Any]]:
    """The rows as one list per column (the array parameters of a statement of any size)."""
    return [list(column) for column in zip(*map(driver_row, projected), strict=True)]


async def get(session: AsyncSession, order_id: UUID) -> ProjectedOrder | None:
    result = await session.execute(select(orders).where(orders.c.order_id == order_id))
    row = result.mappings().first()
    return from_row(row) if row is not None else None


async def page(
    session: AsyncSession,
    *,
    limit: int,
    customer_id: str | None = None,
    status: OrderStatus | None = None,
    after: Keyset | None = None,
) -> tuple[list[ProjectedOrder], Keyset | None]:
    """Orders newest first, at most `limit`, and where the next page starts (None on the last page)."""
    query = select(orders).order_by(orders.c.created_at.desc(), orders.c.order_id.desc()).limit(limit + 1)
    if customer_id is not None:
        query = query.where(orders.c.customer_id == customer_id)
    if status is not None:
        query = query.where(orders.c.status == status.value)
    if after is not None:
        query = query.where(tuple_(orders.c.created_at, orders.c.order_id) < tuple_(after.created_at, after.order_id))
    rows = [from_row(row) for row in (await session.execute(query)).mappings()]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, Keyset(rows[-1].created_at, rows[-1].order_id)


async def all_rows(session: AsyncSession) -> dict[UUID, ProjectedOrder]:
    result = await session.stream(select(orders).execution_options(yield_per=5000))
    return {row["order_id"]: from_row(row) async for row in result.mappings()}


async def lock_table(session: AsyncSession) -> None:
    """Block every writer (each locks its order's row first) while plain reads go on."""
    await session.execute(text("LOCK TABLE orders IN EXCLUSIVE MODE"))


async def remove(session: AsyncSession, order_ids: Sequence[UUID]) -> None:
    if order_ids:
        await session.execute(delete(orders).where(orders.c.order_id.in_(order_ids)))


async def insert_many(session: AsyncSession, projected: Sequence[ProjectedOrder]) -> None:
    """New orders' rows (a new order's insert is its lock), or a rebuild's."""
    if projected:
        await session.execute(insert(orders), [to_row(p) for p in projected])
