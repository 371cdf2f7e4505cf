"""Loading, locking and saving products and reservations. Nothing here commits: the caller owns the
transaction (the worker's per-message one, or the API route's).

Lock order, the same in every transaction, so two of them never wait on each other in a cycle:
first reservation rows in order id order, then products in SKU order.
"""

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from shared.events import PricedLine, ReservationFailure
from sqlalchemy import Text, any_, bindparam, func, select, update
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


async def claim_reservation(session: AsyncSession, order_id: UUID) -> bool:
    """Insert the order's reservation row, which locks it for this transaction. False when the order
    already has one (answered before, or its tombstone). The row starts as FAILED with nothing held
    and is overwritten by `save_reservation` before the commit, so no one sees it so."""
    inserted = await session.execute(
        pg_insert(reservations)
        .values(order_id=order_id, status=ReservationStatus.FAILED.value, lines=[], failures=[])
        .on_conflict_do_nothing(index_elements=[reservations.c.order_id])
        .returning(reservations.c.order_id)
    )
    return inserted.first() is not None


async def lock_reservation(session: AsyncSession, order_id: UUID) -> Reservation | None:
    locked = await lock_reservations(session, [order_id])
    return locked[0] if locked else None


async def lock_reservations(session: AsyncSession, order_ids: Iterable[UUID]) -> list[Reservation]:
    """The existing reservations of these orders, locked in order id order."""
    wanted = sorted(set(order_ids))
    if not wanted:
        return []
    rows = await session.execute(
        select(reservations)
        .where(reservations.c.order_id.in_(wanted))
        .order_by(reservations.c.order_id)
        .with_for_update()
    )
    return [_reservation(row._mapping) for row in rows]


def _reservation(row: Mapping[str, Any]) -> Reservation:
    return Reservation(
        order_id=row["order_id"],
        lines=tuple(PricedLine.model_validate(line) for line in row["lines"]),
        currency=row["currency"],
        status=ReservationStatus(row["status"]),
        failures=tuple(ReservationFailure.model_validate(failure) for failure in row["failures"]),
    )


async def save_reservation(session: AsyncSession, reservation: Reservation) -> None:
    await session.execute(
        update(reservations)
        .where(reservations.c.order_id == reservation.order_id)
        .values(
            status=reservation.status.value,
            currency=reservation.currency,
            total_amount=reservation.total_amount if reservation.lines else None,  # null: nothing was priced
            lines=[line.model_dump(mode="json") for line in reservation.lines],
            failures=[failure.model_dump(mode="json") for failure in reservation.failures],
            updated_at=func.now(),
        )
    )
