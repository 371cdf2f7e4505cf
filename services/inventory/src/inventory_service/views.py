"""Read models for the HTTP API: plain rows, straight from the tables (no locks, no domain)."""

from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters.tables import products, reservations


async def product(session: AsyncSession, sku: str) -> dict[str, Any] | None:
    row = (await session.execute(select(products).where(products.c.sku == sku))).first()
    return None if row is None else dict(row._mapping)


async def reservation(session: AsyncSession, order_id: UUID) -> dict[str, Any] | None:
    row = (await session.execute(select(reservations).where(reservations.c.order_id == order_id))).first()
    return None if row is None else dict(row._mapping)
