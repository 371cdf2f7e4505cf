"""Idempotency keys: the first request with a key claims it for the order it creates."""

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .tables import idempotency_keys


@dataclass(frozen=True)
class Claim:
    """Who holds a key: the hash of the request that claimed it, and the order it created."""

    request_hash: str
    order_id: UUID


async def claim(session: AsyncSession, key: str, request_hash: str, order_id: UUID) -> Claim:
    """Claim `key` for `order_id`, or return the existing claim. A concurrent request with the same
    key waits on the insert until the first one commits (then sees its claim) or rolls back (then
    claims the key itself), so exactly one order is created per key."""
    inserted = await session.execute(
        insert(idempotency_keys)
        .values(key=key, request_hash=request_hash, order_id=order_id)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(idempotency_keys.c.key)
    )
    if inserted.first() is not None:
        return Claim(request_hash, order_id)
    existing = await session.execute(
        select(idempotency_keys.c.request_hash, idempotency_keys.c.order_id).where(idempotency_keys.c.key == key)
    )
    row = existing.one()
    return Claim(row.request_hash, row.order_id)
