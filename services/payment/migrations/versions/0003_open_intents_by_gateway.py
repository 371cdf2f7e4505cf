"""The open intents indexed by gateway first: an executor claims only its own gateway's intents.

Indexed by due time alone, each claim (every sweep, every wake) walked the open intents of every
gateway and filtered by its own: with 8,500 intents another gateway left open (a retired gateway,
or a test's), 7,400 buffers and ~4-11 ms a claim, the largest CPU cost of the payment service's
database sessions under load. By (gateway, next_attempt_at), it reads only what it may claim.

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

SCHEMA = "payments"
OPEN = sa.text("status IN ('CHARGING', 'REFUNDING')")


def upgrade() -> None:
    op.create_index(
        "payments_open_intents_by_gateway",
        "payments",
        ["gateway", "next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=OPEN,
    )
    op.drop_index("payments_open_intents", table_name="payments", schema=SCHEMA)


def downgrade() -> None:
    op.create_index("payments_open_intents", "payments", ["next_attempt_at"], schema=SCHEMA, postgresql_where=OPEN)
    op.drop_index("payments_open_intents_by_gateway", table_name="payments", schema=SCHEMA)
