"""Charge and refund intents: the decision to call the gateway is committed before the call.

New statuses CHARGING and REFUNDING (a call decided, its answer missing) and REFUND_REFUSED; the
intent's gateway, idempotency keys and schedule; the index the executor sweeps. Compatible with
rows written by the previous release (it never writes the new statuses), so it can run while that
release still serves.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"

# Check constraints before and after this revision, frozen here (NEW_CHECKS is adapters/tables.py's
# CHECKS as of now; a later change to those is a migration of its own).
OLD_CHECKS = {
    "payments_status_known": "status IN ('AWAITING_DETAILS', 'CHARGED', 'DECLINED', 'REFUNDED', 'VOIDED')",
    "payments_charge_recorded": (
        "status NOT IN ('CHARGED', 'REFUNDED') OR (payment_id IS NOT NULL AND charged_at IS NOT NULL)"
    ),
}
NEW_CHECKS = {
    "payments_status_known": (
        "status IN ('AWAITING_DETAILS', 'CHARGING', 'CHARGED', 'DECLINED', 'REFUNDING', 'REFUNDED', "
        "'REFUND_REFUSED', 'VOIDED')"
    ),
    "payments_charge_recorded": (
        "status NOT IN ('CHARGED', 'REFUNDING', 'REFUNDED', 'REFUND_REFUSED') "
        "OR (payment_id IS NOT NULL AND charged_at IS NOT NULL)"
    ),
    "payments_charge_intent_complete": (
        "status <> 'CHARGING' OR (charge_key IS NOT NULL AND gateway IS NOT NULL AND payment_token IS NOT NULL "
        "AND amount IS NOT NULL AND next_attempt_at IS NOT NULL)"
    ),
    "payments_refund_intent_complete": (
        "status <> 'REFUNDING' OR (refund_key IS NOT NULL AND gateway IS NOT NULL AND cancelled_at IS NOT NULL "
        "AND next_attempt_at IS NOT NULL)"
    ),
}
COLUMNS = (
    sa.Column("gateway", sa.Text),
    sa.Column("charge_key", sa.Text),
    sa.Column("charge_requested_at", sa.DateTime(timezone=True)),
    sa.Column("refund_key", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("payments", column, schema=SCHEMA)
    _replace_checks(OLD_CHECKS, NEW_CHECKS)
    op.create_index(
        "payments_open_intents",
        "payments",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('CHARGING', 'REFUNDING')"),
    )


def downgrade() -> None:
    # Refused while an intent is open: its gateway call may have been made, and the previous
    # release cannot finish it.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM payments.payments WHERE status IN ('CHARGING', 'REFUNDING', "
        "'REFUND_REFUSED')) THEN RAISE EXCEPTION 'open or refused gateway intents: settle them first'; "
        "END IF; END $$"
    )
    op.drop_index("payments_open_intents", table_name="payments", schema=SCHEMA)
    _replace_checks(NEW_CHECKS, OLD_CHECKS)
    for column in reversed(COLUMNS):
        op.drop_column("payments", column.name, schema=SCHEMA)


def _replace_checks(old: dict[str, str], new: dict[str, str]) -> None:
    for name in old:
        op.drop_constraint(name, "payments", schema=SCHEMA, type_="check")
    for name, condition in new.items():
        op.create_check_constraint(name, "payments", condition, schema=SCHEMA)
