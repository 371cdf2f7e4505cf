"""The HTTP API's reads: typed read models, straight from the tables (no locks, no domain rules).
An absent row is the service's not-found refusal."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from pydantic import TypeAdapter
from shared.events import PricedLine, ReservationFailure
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.tables import products, reservations
from inventory_service.domain import ReservationStatus

from .errors import UnknownProduct, UnknownReservation


@dataclass(frozen=True)
class ProductView:
    sku: str
    name: str
    unit_price: int
    currency: str
    available: int
    reserved: int
    sold: int
    reorder_level: int
    updated_at: datetime


@dataclass(frozen=True)
class ReservationView:
    order_id: UUID
    status: ReservationStatus
    items: tuple[PricedLine, ...]  # empty when FAILED
    total_amount: int | None  # None when FAILED
    currency: str | None
    failures: tuple[ReservationFailure, ...]
    created_at: datetime
    updated_at: datetime


_ITEMS = TypeAdapter(tuple[PricedLine, ...])
_FAILURES = TypeAdapter(tuple[ReservationFailure, ...])


async def get_product(session: AsyncSession, sku: str) -> ProductView:
    row = (await session.execute(select(products).where(products.c.sku == sku))).first()
    if row is None:
        raise UnknownProduct(sku)
    return ProductView(**row._mapping)


async def get_reservation(session: AsyncSession, order_id: UUID) -> ReservationView:
    row = (await session.execute(select(reservations).where(reservations.c.order_id == order_id))).first()
    if row is None:
        raise UnknownReservation(order_id)
    return ReservationView(
        order_id=row.order_id,
        status=ReservationStatus(row.status),
        items=_ITEMS.validate_python(row.lines),
        total_amount=row.total_amount,
        currency=row.currency,
        failures=_FAILURES.validate_python(row.failures),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
