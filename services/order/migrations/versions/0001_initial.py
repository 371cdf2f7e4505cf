"""The event store, the orders projection, idempotency keys, and the outbox machinery.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from shared.outbox.migration import create_machinery_tables, drop_machinery_tables
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    op.create_table(
        "order_events",
        sa.Column("order_id", sa.Uuid, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "version", name="order_events_pkey"),
        sa.UniqueConstraint("event_id", name="order_events_event_id_key"),
        sa.CheckConstraint("version >= 1", name="order_events_version_positive"),
        schema=SCHEMA,
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Uuid, primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("items", JSONB, nullable=False),
        sa.Column("total_amount", sa.BigInteger),
        sa.Column("currency", sa.Text),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("cancellation_reason", sa.Text),
        sa.Column("rejection_reason", sa.Text),
        sa.Column("payment_id", sa.Uuid),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("orders_by_created", "orders", ["created_at", "order_id"], schema=SCHEMA)
    op.create_index("orders_by_customer", "orders", ["customer_id", "created_at", "order_id"], schema=SCHEMA)
    op.create_index("orders_by_status", "orders", ["status", "created_at", "order_id"], schema=SCHEMA)
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("order_id", sa.Uuid, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    create_machinery_tables(op, SCHEMA)


def downgrade() -> None:
    drop_machinery_tables(op, SCHEMA)
    op.drop_table("idempotency_keys", schema=SCHEMA)
    op.drop_table("orders", schema=SCHEMA)
    op.drop_table("order_events", schema=SCHEMA)
