"""The payments table the migrations build is the one the code declares (adapters/tables.py)."""

import pytest
from payment_service.adapters.tables import CHECKS, payments
from sqlalchemy import text

pytestmark = pytest.mark.infra


async def test_the_migrated_table_has_the_declared_columns_checks_and_sweep_index(sessions):
    async with sessions() as session:
        columns = await session.scalars(
            text(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'payments' AND table_name = 'payments'"
            )
        )
        checks = await session.scalars(
            text("SELECT conname FROM pg_constraint WHERE conrelid = 'payments.payments'::regclass AND contype = 'c'")
        )
        index = await session.scalar(
            text(
                "SELECT indexdef FROM pg_indexes "
                "WHERE schemaname = 'payments' AND indexname = 'payments_open_intents_by_gateway'"
            )
        )

    assert set(columns) == {column.name for column in payments.columns}
    assert set(checks) == set(CHECKS)
    assert "(gateway, next_attempt_at) WHERE (status = ANY (ARRAY['CHARGING'::text, 'REFUNDING'::text]))" in index
