"""The order service's own tables. Unqualified, like the machinery tables: connections set
`search_path` to the `orders` schema. Migrations create them (migrations/versions)."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# The source of truth: every event of every order, numbered per order. The primary key is the
# optimistic concurrency check: two writers appending the same version cannot both commit.
order_events = Table(
    "order_events",
    metadata,
    Column("order_id", Uuid, nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("traceparent", Text),  # the envelope's (shared.tracing); NULL before migration 0003
    PrimaryKeyConstraint("order_id", "version", name="order_events_pkey"),
    CheckConstraint("version >= 1", name="order_events_version_positive"),
)

# The projection: each order's current state, written in the transaction that appends its events.
# Its row is also the order's lock: every change starts with SELECT ... FOR UPDATE on it.
orders = Table(
    "orders",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("items", JSONB, nullable=False),
    Column("total_amount", BigInteger),
    Column("currency", Text),
    Column("version", Integer, nullable=False),
    Column("cancellation_reason", Text),
    Column("rejection_reason", Text),
    Column("payment_id", Uuid),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Listing is newest first with keyset pagination on (created_at, order_id); a B-tree is read
    # backwards as cheaply as forwards, so ascending indexes serve the descending order.
    Index("orders_by_created", "created_at", "order_id"),
    Index("orders_by_customer", "customer_id", "created_at", "order_id"),
    Index("orders_by_status", "status", "created_at", "order_id"),
    # The saga deadline sweep's: only the orders in flight (migration 0002).
    Index(
        "orders_awaiting_an_answer", "created_at", postgresql_where=text("status IN ('PENDING', 'AWAITING_PAYMENT')")
    ),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", Text, primary_key=True),
    Column("request_hash", Text, nullable=False),
    Column("order_id", Uuid, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
