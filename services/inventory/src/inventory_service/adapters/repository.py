"""Loading, locking and saving products and reservations, each in one statement however many rows.
Nothing here commits: the caller owns the transaction (the worker's batch, or the API route's).

Lock order, the same in every transaction, so two of them never wait on each other in a cycle:
first reservation rows in order id order, then products in SKU order; new reservations are
inserted last, in order id order (why that is safe: service_layer/unit_of_work.py).
"""

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from shared.events import PricedLine, ReservationFailure
from sqlalchemy import Text, Uuid, any_, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.domain import Product, Reservation, ReservationStatus

from .tables import products, reservations

_PRODUCT_COLUMNS = (
    products.c.sku,
    products.c.name,
    products.c.unit_price,
    products.c.currency,
    products.c.available,
    products.c.reserved,
    products.c.sold,
    products.c.reorder_level,
)
# What a reservation's update sets (its order id never changes).
_RESERVATION_SETTABLE = ("status", "currency", "total_amount", "lines", "failures")

# -- products ---------------------------------------------------------------------------------------


async def lock_products(session: AsyncSession, skus: Iterable[str]) -> dict[str, Product]:
    """The known products among `skus`, locked in SKU order (unknown SKUs are simply absent)."""
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    rows = await session.execute(
        select(*_PRODUCT_COLUMNS)
        .where(products.c.sku == any_(bindparam("skus", wanted, type_=ARRAY(Text))))
        .order_by(products.c.sku)
        .with_for_update()
    )
    return {row.sku: _product(row._mapping) for row in rows}


async def lock_product(session: AsyncSession, sku: str) -> Product | None:
    return (await lock_products(session, [sku])).get(sku)


async def add_product(session: AsyncSession, product: Product) -> bool:
    """Insert a new product; False when a concurrent transaction created that SKU first."""
    inserted = await session.execute(
        pg_insert(products)
        .values(_product_values(product))
        .on_conflict_do_nothing(index_elements=[products.c.sku])
        .returning(products.c.sku)
    )
    return inserted.first() is not None


async def save_products(session: AsyncSession, changed: Iterable[Product]) -> None:
    # One executemany; bind names differ from column names, as SQLAlchemy requires in a SET clause.
    rows = [{f"p_{name}": value for name, value in _product_values(product).items()} for product in changed]
    if not rows:
        return
    settable = [column.name for column in _PRODUCT_COLUMNS if column is not products.c.sku]
    await session.execute(
        update(products)
        .where(products.c.sku == bindparam("p_sku"))
        .values({**{name: bindparam(f"p_{name}") for name in settable}, "updated_at": func.now()}),
        rows,
    )


def _product(row: Mapping[str, Any]) -> Product:
    return Product(**{column.name: row[column.name] for column in _PRODUCT_COLUMNS})


def _product_values(product: Product) -> dict[str, Any]:
    return {column.name: getattr(product, column.name) for column in _PRODUCT_COLUMNS}


# -- reservations -----------------------------------------------------------------------------------


async def lock_reservations(session: AsyncSession, order_ids: Iterable[UUID]) -> list[Reservation]:
    """The existing reservations of these orders, locked in order id order."""
    wanted = sorted(set(order_ids))
    if not wanted:
        return []
    rows = await session.execute(
        select(reservations)
        .where(reservations.c.order_id == any_(bindparam("order_ids", wanted, type_=ARRAY(Uuid))))
        .order_by(reservations.c.order_id)
        .with_for_update()
    )
    return [_reservation(row._mapping) for row in rows]


async def insert_reservations(session: AsyncSession, new: Iterable[Reservation]) -> None:
    """Insert the reservations of orders that had none, in order id order. A plain INSERT: an order
    that got its row from a concurrent transaction meanwhile fails the statement (unique violation)."""
    rows = [{"order_id": r.order_id, **_reservation_values(r)} for r in sorted(new, key=lambda r: r.order_id)]
    if rows:
        await session.execute(insert(reservations), rows)


async def save_reservations(session: AsyncSession, changed: Iterable[Reservation]) -> None:
    # One executemany, bind names distinct from column names as in save_products.
    rows = [
        {"r_order_id": r.order_id, **{f"r_{name}": value for name, value in _reservation_values(r).items()}}
        for r in changed
    ]
    if not rows:
        return
    await session.execute(
        update(reservations)
        .where(reservations.c.order_id == bindparam("r_order_id"))
        .values({**{name: bindparam(f"r_{name}") for name in _RESERVATION_SETTABLE}, "updated_at": func.now()}),
        rows,
    )


def _reservation_values(reservation: Reservation) -> dict[str, Any]:
    return {
        "status": reservation.status.value,
        "currency": reservation.currency,
        "total_amount": reservation.total_amount if reservation.lines else None,  # null: nothing was priced
        "lines": [line.model_dump(mode="json") for line in reservation.lines],
        "failures": [failure.model_dump(mode="json") for failure in reservation.failures],
    }


def _reservation(row: Mapping[str, Any]) -> Reservation:
    return Reservation(
        order_id=row["order_id"],
        lines=tuple(PricedLine.model_validate(line) for line in row["lines"]),
        currency=row["currency"],
        status=ReservationStatus(row["status"]),
        failures=tuple(ReservationFailure.model_validate(failure) for failure in row["failures"]),
    )
