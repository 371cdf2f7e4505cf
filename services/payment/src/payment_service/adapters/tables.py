"""The payment service's table. Unqualified: connections set `search_path` to the service's schema.

The initial migration creates the same table; this metadata is what the code reads and writes.
"""

from sqlalchemy import CHAR, BigInteger, CheckConstraint, Column, DateTime, MetaData, Table, Text, Uuid, func

metadata = MetaData()

payments = Table(
    "payments",
    metadata,
    # One row per order, created by whichever fact arrives first (OrderCreated, StockReserved or
    # OrderCancelled) and locked by every handler of that order.
    Column("order_id", Uuid, primary_key=True),
    Column("payment_token", Text),  # never leaves the service: not in events, not in the API
    Column("amount", BigInteger),  # minor units of `currency`
    Column("currency", CHAR(3)),
    Column("status", Text, nullable=False),
    Column("payment_id", Uuid),
    Column("failure_reason", Text),
    Column("charged_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("refund_id", Uuid),
    Column("refunded_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(
        "status IN ('AWAITING_DETAILS', 'CHARGED', 'DECLINED', 'REFUNDED', 'VOIDED')", name="payments_status_known"
    ),
    CheckConstraint("amount >= 0", name="payments_amount_not_negative"),
    # What "charged" means, written down where no bug can get around it.
    CheckConstraint(
        "status NOT IN ('CHARGED', 'REFUNDED') OR (payment_id IS NOT NULL AND charged_at IS NOT NULL)",
        name="payments_charge_recorded",
    ),
)
