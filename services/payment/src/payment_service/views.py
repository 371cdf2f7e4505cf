"""Read models for the HTTP API: plain rows, straight from the table (no locks, no domain)."""

from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.adapters.tables import payments


async def payment(session: AsyncSession, order_id: UUID) -> dict[str, Any] | None:
    row = (await session.execute(select(payments).where(payments.c.order_id == order_id))).first()
    return None if row is None else dict(row._mapping)
