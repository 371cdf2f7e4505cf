"""Payment tokens are forgotten once no charge can need them: this release clears the column when a
charge is answered or a payment voided, and this migration clears it in the rows an earlier release
left behind (tokens it kept after the charge, in clear).

Data only, and harmless to the previous release while it still serves (it never reads a token of a
payment past CHARGING). A constraint forbidding such tokens is left for a later release: the
previous one, still writing them, would fail every recorded charge.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The statuses in which a charge may still need its token (domain/payment.py: NEEDS_TOKEN).
FORGET_UNNEEDED_TOKENS = (
    "UPDATE payments.payments SET payment_token = NULL "
    "WHERE payment_token IS NOT NULL AND status NOT IN ('AWAITING_DETAILS', 'CHARGING')"
)


def upgrade() -> None:
    op.execute(FORGET_UNNEEDED_TOKENS)


def downgrade() -> None:
    pass  # a forgotten token cannot come back: that is the point
