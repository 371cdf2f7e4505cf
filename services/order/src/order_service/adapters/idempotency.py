"""Idempotency keys: the first request with a key claims it for the order it creates."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import CTE, Text, Uuid, bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from .projection import ProjectedOrder, from_row
from .tables import idempotency_keys, orders


@dataclass(frozen=True)
class Claim:
    """Who holds a key: the hash of the request that claimed it, and the order it created."""

    key: str
    request_hash: str
    order_id: UUID


def claiming() -> CTE:
    """`claimed`: the key's row if this statement inserted it, nothing if the key was claimed
    already; its values are bound by `claim_parameters`. A concurrent request with the same key
    waits on the insert until the first one commits (then finds its claim) or rolls back (then
    claims the key itself), so exactly one order is created per key."""
    return (
        insert(idempotency_keys)
        .values(
            key=bindparam("claim_key", type_=Text),
            request_hash=bindparam("claim_request_hash", type_=Text),
            order_id=bindparam("claim_order_id", type_=Uuid),
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(idempotency_keys.c.key)
        .cte("claimed")
    )


def claim_parameters(claim: Claim) -> dict[str, Any]:
    return {"claim_key": claim.key, "claim_request_hash": claim.request_hash, "claim_order_id": claim.order_id}


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
