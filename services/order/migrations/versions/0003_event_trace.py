"""Each stored event keeps the traceparent its envelope carried (shared.tracing): the saga deadline
sweep cancels an overdue order in the trace of the order's last event, so a timed-out order is
still one trace.

Nullable: events stored before this release have none (their timeout then starts a trace of its
own). Adding a nullable column without a default changes only the catalog: no table rewrite.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    op.add_column("order_events", sa.Column("traceparent", sa.Text(), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("order_events", "traceparent", schema=SCHEMA)
