"""Each payment records whose order it is (OrderCreated's customer_id), so the API shows a customer
only the payments of its own orders.

Nullable: a payment created by StockReserved or OrderCancelled before its OrderCreated arrives has no
customer yet, and payments recorded before this release have none (only support and admin see those).
Adding a nullable column without a default changes only the catalog: no table rewrite, no long lock.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"


def upgrade() -> None:
    op.add_column("payments", sa.Column("customer_id", sa.Text(), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("payments", "customer_id", schema=SCHEMA)
