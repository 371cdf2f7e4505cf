"""The catalog, the reservations, and the outbox and processed-events machinery.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
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

SCHEMA = "inventory"


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("sku", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("unit_price", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("available", sa.Integer, nullable=False),
        sa.Column("reserved", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sold", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reorder_level", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("available >= 0", name="products_available_not_negative"),
        sa.CheckConstraint("reserved >= 0", name="products_reserved_not_negative"),
        sa.CheckConstraint("sold >= 0", name="products_sold_not_negative"),
        sa.CheckConstraint("unit_price >= 0", name="products_unit_price_not_negative"),
        sa.CheckConstraint("reorder_level >= 0", name="products_reorder_level_not_negative"),
        schema=SCHEMA,
    )
    op.create_table(
        "reservations",
        sa.Column("order_id", sa.Uuid, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("currency", sa.CHAR(3)),
        sa.Column("total_amount", sa.BigInteger),
        sa.Column("lines", JSONB, nullable=False),
        sa.Column("failures", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("status IN ('RESERVED', 'SOLD', 'RELEASED', 'FAILED')", name="reservations_status_known"),
        schema=SCHEMA,
    )
    create_machinery_tables(op, SCHEMA)


def downgrade() -> None:
    drop_machinery_tables(op, SCHEMA)
    op.drop_table("reservations", schema=SCHEMA)
    op.drop_table("products", schema=SCHEMA)
