"""shared.db's engine against the real Postgres: a connection that failed the way a dead or
restarting server fails is thrown away, never handed out again."""

import asyncio
import contextlib

import pytest
from order_service.settings import Settings
from shared.db import create_engine, create_session_factory, driver_connection
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

pytestmark = pytest.mark.infra


async def test_a_connection_that_failed_like_an_outage_is_invalidated_and_the_next_one_is_fresh():
    engine = create_engine(Settings(db_pool_size=1, db_max_overflow=0), role="tests")
    try:
        conn = await engine.connect()
        broken_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        driver = (await conn.get_raw_connection()).driver_connection
        # The driver's state machine is busy behind SQLAlchemy's back: asyncpg refuses the next
        # statement ("another operation is in progress"), as it does after an interrupted exchange.
        busy = asyncio.ensure_future(driver.execute("SELECT pg_sleep(0.3)"))
        await asyncio.sleep(0.05)
        with pytest.raises(DBAPIError):
            await conn.execute(text("SELECT 1"))
        invalidated = conn.invalidated
        with contextlib.suppress(Exception):
            await busy
        with contextlib.suppress(Exception):
            await conn.close()

        assert invalidated
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != broken_pid
    finally:
        await engine.dispose()


async def test_statements_sent_on_the_driver_connection_belong_to_the_session_s_transaction():
    engine = create_engine(Settings(db_pool_size=1, db_max_overflow=0), role="tests")
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session:
            async with session.begin():
                driver = await driver_connection(session)  # before any statement through SQLAlchemy
                first = await driver.fetchval("SELECT pg_current_xact_id()::text")
                second = (await session.execute(text("SELECT pg_current_xact_id()::text"))).scalar_one()
                await driver.execute("CREATE TEMP TABLE driver_probe (n int)")
                await driver.execute("INSERT INTO driver_probe VALUES (1)")
                await session.rollback()
        async with sessions() as session:
            left = await session.execute(text("SELECT to_regclass('pg_temp.driver_probe')"))

        assert first == second, "one transaction"
        assert left.scalar_one() is None, "rolled back with the session"
    finally:
        await engine.dispose()


async def test_a_session_s_driver_connection_is_built_once_per_transaction():
    engine = create_engine(Settings(db_pool_size=1, db_max_overflow=0), role="tests")
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session:
            async with session.begin():
                first, again = await driver_connection(session), await driver_connection(session)
                in_first = await first.fetchval("SELECT pg_current_xact_id()::text")
            async with session.begin():
                second = await driver_connection(session)
                in_second = await second.fetchval("SELECT pg_current_xact_id()::text")

        assert first is again
        assert second is not first and in_second != in_first
    finally:
        await engine.dispose()
