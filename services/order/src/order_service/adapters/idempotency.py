"""Idempotency keys: the first request with a key claims it for the order it creates (the claim is
part of the new order's one statement, repository.insert_new)."""

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .projection import ProjectedOrder, from_row
from .tables import idempotency_keys, orders


@dataclass(frozen=True)
class Claim:
    """Who holds a key: the hash of the request that claimed it, and the order it created."""

    key: str
    request_hash: str
    order_id: UUID


async def earlier_claim(session: AsyncSession, key: str) -> tuple[Claim, ProjectedOrder | None]:
    """The claim that holds `key`, and the order it created, in one statement."""
    result = await session.execute(
        select(idempotency_keys.c.request_hash, idempotency_keys.c.order_id.label("claimed_order_id"), orders)
        .select_from(idempotency_keys.outerjoin(orders, orders.c.order_id == idempotency_keys.c.order_id))
        .where(idempotency_keys.c.key == key)
    )
    row = dict(result.mappings().one())
    claim = Claim(key, row.pop("request_hash"), row.pop("claimed_order_id"))
    return claim, (from_row(row) if row["order_id"] is not None else None)
