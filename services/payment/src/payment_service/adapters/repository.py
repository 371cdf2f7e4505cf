"""Loading, locking and saving Payments, a set at a time: one statement per step whatever the number
of orders. Nothing here commits: the caller's transaction (the worker's batch, or one of the
executor's short ones) does.

The lock order is the one every transaction that locks payment rows keeps: ascending order id,
each set locked in one statement (`create_missing_payments`, then `lock_payments`). Two such
transactions (two worker processes, a worker and an executor) wait on each other at most in one
direction, never in a cycle. The executor's claim skips locked rows and waits for none.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Uuid, any_, bindparam, func, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY
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

# An array of order ids is one parameter: the statement's text, hence its prepared form in the
# connection's cache, is the same for one order and for five hundred.
_ORDER_IDS = bindparam("order_ids", type_=ARRAY(Uuid))

_CREATE_MISSING = (
    pg_insert(payments)
    .from_select(
        ["order_id", "status"],
        select(func.unnest(_ORDER_IDS), literal(PaymentStatus.AWAITING_DETAILS.value)),
    )
    .on_conflict_do_nothing(index_elements=[payments.c.order_id])
)
_LOCK = select(payments).where(payments.c.order_id == any_(_ORDER_IDS)).order_by(payments.c.order_id).with_for_update()
_SAVE = (
    update(payments)
    .where(payments.c.order_id == bindparam("saved_order_id"))
    .values({name: bindparam(f"saved_{name}") for name in _FIELDS} | {"updated_at": func.statement_timestamp()})
)


class LockedPayments(Mapping[UUID, Payment]):
    """Payments locked for this transaction, by order id, with what each was when loaded: only the
    ones changed since are written back."""

    def __init__(self, loaded: Iterable[Payment]) -> None:
        self._payments = {payment.order_id: payment for payment in loaded}
        self._as_loaded = {order_id: _values(payment) for order_id, payment in self._payments.items()}

    def __getitem__(self, order_id: UUID) -> Payment:
        return self._payments[order_id]

    def __iter__(self) -> Iterator[UUID]:
        return iter(self._payments)

    def __len__(self) -> int:
        return len(self._payments)

    def changed(self) -> list[Payment]:
        return [p for order_id, p in self._payments.items() if _values(p) != self._as_loaded[order_id]]


async def create_missing_payments(session: AsyncSession, order_ids: Iterable[UUID]) -> None:
    """A payment (awaiting details) for each order that has none yet: the first fact about an order
    creates it. In ascending order id, like every lock: a second transaction inserting the same
    order waits for the first to commit, and two of them never wait on each other in a cycle."""
    await session.execute(_CREATE_MISSING, {"order_ids": sorted(set(order_ids))})


async def lock_payments(session: AsyncSession, order_ids: Iterable[UUID]) -> LockedPayments:
    """The orders' payments (those that exist), locked for this transaction in ascending order id."""
    rows = await session.execute(_LOCK, {"order_ids": sorted(set(order_ids))})
    return LockedPayments(_payment(row) for row in rows)


async def lock_due_intents(session: AsyncSession, gateway: str, now: datetime, limit: int) -> LockedPayments:
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
    return LockedPayments(_payment(row) for row in rows)


async def save_payments(session: AsyncSession, changed: Sequence[Payment]) -> None:
    """Write the payments back, in one statement (executemany: one round trip for the set)."""
    if not changed:
        return
    await session.execute(
        _SAVE,
        [
            {"saved_order_id": payment.order_id, **{f"saved_{name}": value for name, value in _columns(payment)}}
            for payment in changed
        ],
    )


def _columns(payment: Payment) -> Iterator[tuple[str, Any]]:
    for name in _FIELDS:
        value = getattr(payment, name)
        yield name, value.value if isinstance(value, PaymentStatus) else value


def _values(payment: Payment) -> tuple[Any, ...]:
    return tuple(getattr(payment, name) for name in _FIELDS)


def _payment(row: Any) -> Payment:
    fields = {name: getattr(row, name) for name in _FIELDS}
    return Payment(order_id=row.order_id, **{**fields, "status": PaymentStatus(row.status)})
