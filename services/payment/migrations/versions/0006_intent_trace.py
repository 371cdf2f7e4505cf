"""Each payment keeps the trace its open intent continues (a W3C traceparent, shared.tracing): the
executor makes the gateway call, and writes the events of its answer, in the trace of the event that
decided the charge or the refund, so one order stays one trace across the executor's hop too.

Nullable: an intent recorded before this release has none (its call then starts a trace of its
own). Adding a nullable column without a default changes only the catalog: no table rewrite.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"


def upgrade() -> None:
    op.add_column("payments", sa.Column("traceparent", sa.Text(), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("payments", "traceparent", schema=SCHEMA)
