"""Loading, locking and saving an order's Payment. Nothing here commits: the worker's per-message
transaction does."""

from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.domain import Payment, PaymentStatus

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
    row = (await session.execute(select(payments).where(payments.c.order_id == order_id).with_for_update())).one()
    fields = {name: getattr(row, name) for name in _FIELDS}
    return Payment(order_id=order_id, **{**fields, "status": PaymentStatus(row.status)})


async def save_payment(session: AsyncSession, payment: Payment) -> None:
    values = {name: getattr(payment, name) for name in _FIELDS}
    await session.execute(
        update(payments)
        .where(payments.c.order_id == payment.order_id)
        # Statement time, not transaction start: the gateway call in between can take a while,
        # and updated_at should not precede the charged_at it records.
        .values({**values, "status": payment.status.value, "updated_at": func.statement_timestamp()})
    )
