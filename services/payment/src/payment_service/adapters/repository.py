"""Loading, locking and saving an order's Payment. Nothing here commits: the caller's transaction
(the worker's per-message one, or one of the executor's short ones) does."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.domain import Payment, PaymentStatus
from payment_service.domain.payment import OPEN_INTENTS

from .tables import payments

_FIELDS = (
    "payment_token",
    "amount",
    "currency",
    "status",
    "payment_id",
    "failure_reason",
    "charged_at",
    "cancelled_at",
    "refund_id",
    "refunded_at",
    "gateway",
    "charge_key",
    "charge_requested_at",
    "refund_key",
    "attempts",
    "next_attempt_at",
    "last_error",
)


async def lock_payment(session: AsyncSession, order_id: UUID) -> Payment:
    """The order's payment, locked for this transaction; created (awaiting details) if it is the
    first fact about the order. Insert-then-lock: two first facts arriving at once cannot both
    create it, and the second waits for the first to commit."""
    await session.execute(
        pg_insert(payments)
        .values(order_id=order_id, status=PaymentStatus.AWAITING_DETAILS.value)
        .on_conflict_do_nothing(index_elements=[payments.c.order_id])
    )
    return await lock_existing_payment(session, order_id)


async def lock_existing_payment(session: AsyncSession, order_id: UUID) -> Payment:
    row = (await session.execute(select(payments).where(payments.c.order_id == order_id).with_for_update())).one()
    return _payment(row)


async def lock_due_intents(session: AsyncSession, gateway: str, now: datetime, limit: int) -> Sequence[Payment]:
    """Up to `limit` payments whose intent at `gateway` is due, oldest first, locked. Rows another
    executor is claiming right now are skipped rather than waited for."""
    rows = await session.execute(
        select(payments)
        .where(
            payments.c.status.in_([status.value for status in OPEN_INTENTS]),
            payments.c.gateway == gateway,
            payments.c.next_attempt_at <= now,
        )
        .order_by(payments.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_payment(row) for row in rows]


async def save_payment(session: AsyncSession, payment: Payment) -> None:
    values = {name: getattr(payment, name) for name in _FIELDS}
    await session.execute(
        update(payments)
        .where(payments.c.order_id == payment.order_id)
        .values({**values, "status": payment.status.value, "updated_at": func.statement_timestamp()})
    )


def _payment(row: Any) -> Payment:
    fields = {name: getattr(row, name) for name in _FIELDS}
    return Payment(order_id=row.order_id, **{**fields, "status": PaymentStatus(row.status)})
