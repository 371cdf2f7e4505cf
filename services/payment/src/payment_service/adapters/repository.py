"""Loading, locking and saving Payments, a set at a time: one statement per step whatever the number
of orders. Nothing here commits: the caller's transaction (the worker's batch, or one of the
executor's short ones) does.

The statements are SQL text run on the driver (shared.db.driver_connection): one text per statement
shape, with the sets as array parameters, so asyncpg prepares each once per connection whatever the
batch size, and no SQLAlchemy statement is built, cache-keyed or compiled per call (on these hot
paths that cost more CPU than the statements themselves). Every parameter is cast, so its type is
the statement's, not a guess.

The lock order is the one every transaction that locks payment rows keeps: ascending order id,
each set locked in one statement (`create_missing_payments`, then `lock_payments`). Two such
transactions (two worker processes, a worker and an executor) wait on each other at most in one
direction, never in a cycle. The executor's claim skips locked rows and waits for none.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any
from uuid import UUID

from shared.db import DriverConnection

from payment_service.domain import Payment, PaymentStatus
from payment_service.domain.payment import OPEN_INTENTS

# What a Payment is made of besides its order id, with each column's type (tables.py) for the casts.
_FIELDS = {
    "customer_id": "text",
    "payment_token": "text",
    "amount": "bigint",
    "currency": "text",  # char(3) in the table: assigned from text, read back as text
    "status": "text",
    "payment_id": "uuid",
    "failure_reason": "text",
    "charged_at": "timestamptz",
    "cancelled_at": "timestamptz",
    "refund_id": "uuid",
    "refunded_at": "timestamptz",
    "gateway": "text",
    "charge_key": "text",
    "charge_requested_at": "timestamptz",
    "refund_key": "text",
    "attempts": "int",
    "next_attempt_at": "timestamptz",
    "last_error": "text",
    "traceparent": "text",
}
_COLUMNS = ", ".join(["order_id", *_FIELDS])
_STATUS = list(_FIELDS).index("status")
# A payment's fields as a tuple, in _FIELDS order: what it was when loaded, and what the save writes.
_values = attrgetter(*_FIELDS)

CREATE_MISSING = f"""
    INSERT INTO payments (order_id, status)
    SELECT unnest($1::uuid[]), '{PaymentStatus.AWAITING_DETAILS.value}'
    ON CONFLICT (order_id) DO NOTHING
"""

LOCK = f"""
    SELECT {_COLUMNS} FROM payments
    WHERE order_id = ANY($1::uuid[])
    ORDER BY order_id
    FOR UPDATE
"""

# The statuses are written out, not a parameter: the condition is then the partial index's own
# (payments_open_intents), which the planner can use in the statement's generic plan too.
LOCK_DUE = f"""
    SELECT {_COLUMNS} FROM payments
    WHERE status IN ({", ".join(f"'{status.value}'" for status in sorted(OPEN_INTENTS))})
        AND gateway = $1::text AND next_attempt_at <= $2::timestamptz
    ORDER BY next_attempt_at
    LIMIT $3::int
    FOR UPDATE SKIP LOCKED
"""

# One array per column, the rows zipped by unnest: one statement, one round trip, for any number.
SAVE = f"""
    UPDATE payments SET {", ".join(f"{name} = saved.{name}" for name in _FIELDS)}, updated_at = statement_timestamp()
    FROM unnest($1::uuid[], {", ".join(f"${n}::{kind}[]" for n, kind in enumerate(_FIELDS.values(), start=2))})
        AS saved (order_id, {", ".join(_FIELDS)})
    WHERE payments.order_id = saved.order_id
"""


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


async def create_missing_payments(connection: DriverConnection, order_ids: Iterable[UUID]) -> None:
    """A payment (awaiting details) for each order that has none yet: the first fact about an order
    creates it. In ascending order id, like every lock: a second transaction inserting the same
    order waits for the first to commit, and two of them never wait on each other in a cycle."""
    await connection.execute(CREATE_MISSING, sorted(set(order_ids)))


async def lock_payments(connection: DriverConnection, order_ids: Iterable[UUID]) -> LockedPayments:
    """The orders' payments (those that exist), locked for this transaction in ascending order id."""
    rows = await connection.fetch(LOCK, sorted(set(order_ids)))
    return LockedPayments(_payment(row) for row in rows)


async def lock_due_intents(connection: DriverConnection, gateway: str, now: datetime, limit: int) -> LockedPayments:
    """Up to `limit` payments whose intent at `gateway` is due, oldest first, locked. Rows another
    executor is claiming right now are skipped rather than waited for."""
    rows = await connection.fetch(LOCK_DUE, gateway, now, limit)
    return LockedPayments(_payment(row) for row in rows)


async def save_payments(connection: DriverConnection, changed: Sequence[Payment]) -> None:
    """Write the payments back, in one statement."""
    if not changed:
        return
    columns = list(zip(*map(_values, changed), strict=True))
    columns[_STATUS] = tuple(status.value for status in columns[_STATUS])
    await connection.execute(SAVE, [payment.order_id for payment in changed], *columns)


def _payment(row: Mapping[str, Any]) -> Payment:
    """A payment from a row of `_COLUMNS` (the statements select exactly the Payment's fields)."""
    return Payment(**{**row, "status": PaymentStatus(row["status"])})
