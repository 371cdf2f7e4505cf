"""The payments table, and the outbox and processed-events machinery.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from shared.outbox.migration import create_machinery_tables, drop_machinery_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("order_id", sa.Uuid, primary_key=True),
        sa.Column("payment_token", sa.Text),
        sa.Column("amount", sa.BigInteger),
        sa.Column("currency", sa.CHAR(3)),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("payment_id", sa.Uuid),
        sa.Column("failure_reason", sa.Text),
        sa.Column("charged_at", sa.DateTime(timezone=True)),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        sa.Column("refund_id", sa.Uuid),
        sa.Column("refunded_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "status IN ('AWAITING_DETAILS', 'CHARGED', 'DECLINED', 'REFUNDED', 'VOIDED')",
            name="payments_status_known",
        ),
        sa.CheckConstraint("amount >= 0", name="payments_amount_not_negative"),
        sa.CheckConstraint(
            "status NOT IN ('CHARGED', 'REFUNDED') OR (payment_id IS NOT NULL AND charged_at IS NOT NULL)",
            name="payments_charge_recorded",
        ),
        schema=SCHEMA,
    )
    create_machinery_tables(op, SCHEMA)


def downgrade() -> None:
    drop_machinery_tables(op, SCHEMA)
    op.drop_table("payments", schema=SCHEMA)
