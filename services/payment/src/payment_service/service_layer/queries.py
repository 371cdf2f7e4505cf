"""The API's reads: an order's payment as the table holds it, without locks and without the
domain (nothing is decided on a read). The payment token and the intent's bookkeeping (keys,
attempts, errors) are not read: they never leave the service."""

from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.adapters.tables import payments
from payment_service.domain import PaymentStatus

from .errors import PaymentNotFound


@dataclass(frozen=True)
class PaymentView:
    order_id: UUID
    status: PaymentStatus
    amount: int | None  # minor units of `currency`; None until inventory priced the order
    currency: str | None
    payment_id: UUID | None  # the gateway's id of the charge
    failure_reason: str | None  # the decline's, or the refused refund's
    charged_at: datetime | None
    refunded_at: datetime | None
    created_at: datetime
    updated_at: datetime


# What the view shows, read straight from the columns of the same names.
_COLUMNS = [payments.c[field.name] for field in fields(PaymentView)]


async def get_payment(session: AsyncSession, order_id: UUID, *, owner: str | None = None) -> PaymentView:
    """`owner`: the customer asking, who sees only the payments of its own orders; another
    customer's is a PaymentNotFound like a payment that does not exist. None: any (support, admin)."""
    query = select(*_COLUMNS).where(payments.c.order_id == order_id)
    if owner is not None:
        query = query.where(payments.c.customer_id == owner)
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise PaymentNotFound(order_id)
    return PaymentView(**{**row._asdict(), "status": PaymentStatus(row.status)})
