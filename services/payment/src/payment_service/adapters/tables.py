"""The payment service's table. Unqualified: connections set `search_path` to the service's schema.

The migrations create the same table; this metadata is what the code reads and writes.
"""

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    text,
)

metadata = MetaData()

STATUSES = (
    "AWAITING_DETAILS",
    "CHARGING",
    "CHARGED",
    "DECLINED",
    "REFUNDING",
    "REFUNDED",
    "REFUND_REFUSED",
    "VOIDED",
)
# The rules no bug may get around, one constraint each (migration 0002 writes the same text).
CHECKS = {
    "payments_status_known": "status IN ({})".format(", ".join(f"'{s}'" for s in STATUSES)),
    "payments_amount_not_negative": "amount >= 0",
    # What "charged" means.
    "payments_charge_recorded": (
        "status NOT IN ('CHARGED', 'REFUNDING', 'REFUNDED', 'REFUND_REFUSED') "
        "OR (payment_id IS NOT NULL AND charged_at IS NOT NULL)"
    ),
    # An open intent has what its gateway call needs, and a time it is due at, so the executor's
    # sweep cannot miss it.
    "payments_charge_intent_complete": (
        "status <> 'CHARGING' OR (charge_key IS NOT NULL AND gateway IS NOT NULL AND payment_token IS NOT NULL "
        "AND amount IS NOT NULL AND next_attempt_at IS NOT NULL)"
    ),
    "payments_refund_intent_complete": (
        "status <> 'REFUNDING' OR (refund_key IS NOT NULL AND gateway IS NOT NULL AND cancelled_at IS NOT NULL "
        "AND next_attempt_at IS NOT NULL)"
    ),
}

payments = Table(
    "payments",
    metadata,
    # One row per order, created by whichever fact arrives first (OrderCreated, StockReserved or
    # OrderCancelled) and locked by every handler of that order.
    Column("order_id", Uuid, primary_key=True),
    Column("customer_id", Text),  # whose order (OrderCreated); NULL until then, and before migration 0005
    Column("payment_token", Text),  # never leaves the service: not in events, not in the API
    Column("amount", BigInteger),  # minor units of `currency`
    Column("currency", CHAR(3)),
    Column("status", Text, nullable=False),
    Column("payment_id", Uuid),
    Column("failure_reason", Text),  # the decline's, or the refused refund's
    Column("charged_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("refund_id", Uuid),
    Column("refunded_at", DateTime(timezone=True)),
    # The intent (see domain/payment.py): the gateway and keys the money moves at and under.
    Column("gateway", Text),
    Column("charge_key", Text),
    Column("charge_requested_at", DateTime(timezone=True)),
    Column("refund_key", Text),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("traceparent", Text),  # the trace the open intent's call continues (migration 0006)
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    *(CheckConstraint(sql, name=name) for name, sql in CHECKS.items()),
    # The executor's claim: only open intents are indexed, so the index stays as small as they are
    # few, and by gateway first, so an executor reads only the intents it may claim (migration 0003).
    Index(
        "payments_open_intents_by_gateway",
        "gateway",
        "next_attempt_at",
        postgresql_where=text("status IN ('CHARGING', 'REFUNDING')"),
    ),
)
