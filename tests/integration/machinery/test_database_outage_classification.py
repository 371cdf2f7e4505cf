"""`shared.outage.is_database_outage` against the exceptions that really reach a worker or a request
handler: each one produced by SQLAlchemy and asyncpg against the real Postgres (or against the
test's proxy in front of it), never built by hand, because the wrapping is what the classifier has
to see through (SQLAlchemy's DBAPIError around the adapter's Error around asyncpg's exception).

The one state that cannot be produced on the shared Postgres without restarting it, 57P03 ("the
database system is starting up"), comes from the proxy, which answers the startup packet exactly as
a starting Postgres does; the client side (asyncpg's protocol, SQLAlchemy's translation) is real.
"""

import asyncio
from collections.abc import Awaitable

import pytest
from machinery_support import DATABASE_URL
from postgres_superuser import superuser_sql
from shared.outage import is_database_outage
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

# Every test here logs in as the machinery role (some without a schema of their own): it must exist
# whatever ran before, on a database made anew too.
pytestmark = [pytest.mark.infra, pytest.mark.timeout(60), pytest.mark.usefixtures("machinery_role")]

ZERO = "00000000-0000-0000-0000-000000000000"
NO_CONNECTIONS_ROLE = "machinery_no_connections"  # CONNECTION LIMIT 0: every login is refused with 53300


async def raised(operation: Awaitable[object]) -> BaseException:
    try:
        await operation
    except Exception as exc:
        return exc
    raise AssertionError("the operation did not fail")


def sqlstates(exc: BaseException) -> set[str]:
    """The SQLSTATEs along the exception's chain (SQLAlchemy's `orig`, causes and contexts)."""
    found, todo, seen = set(), [exc], []
    while todo:
        link = todo.pop()
        if link is None or any(link is s for s in seen):
            continue
        seen.append(link)
        if getattr(link, "sqlstate", None):
            found.add(link.sqlstate)
        todo += [getattr(link, "orig", None), link.__cause__, link.__context__]
    return found


async def select_one(url: str) -> None:
    engine = create_async_engine(url, pool_pre_ping=True)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def test_a_session_whose_server_process_was_terminated_fails_with_an_outage():
    engine = create_async_engine(DATABASE_URL)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            superuser_sql(f"SELECT pg_terminate_backend({pid})")  # as a fast shutdown does to every session
            exc = await raised(conn.execute(text("SELECT 1")))
    finally:
        await engine.dispose()

    assert isinstance(exc, DBAPIError)
    assert "57P01" in sqlstates(exc)  # admin_shutdown
    assert is_database_outage(exc)


async def test_a_refused_connection_is_an_outage(database_proxy):
    await database_proxy.cut()

    exc = await raised(select_one(database_proxy.url()))

    assert isinstance(exc, ConnectionRefusedError)  # SQLAlchemy passes it through unwrapped
    assert is_database_outage(exc)


async def test_a_server_that_is_starting_up_is_an_outage_although_sqlalchemy_does_not_invalidate_anything(
    database_proxy,
):
    await database_proxy.starting_up()

    exc = await raised(select_one(database_proxy.url()))

    assert isinstance(exc, DBAPIError)
    assert exc.connection_invalidated is False
    assert sqlstates(exc) == {"57P03"}
    assert is_database_outage(exc)


async def test_a_connection_lost_in_the_middle_of_a_statement_is_an_outage(database_proxy):
    engine = create_async_engine(database_proxy.url())
    try:
        async with engine.connect() as conn:
            statement = asyncio.ensure_future(conn.execute(text("SELECT pg_sleep(5)")))
            await asyncio.sleep(0.3)
            await database_proxy.cut()
            exc = await raised(statement)
    finally:
        await engine.dispose()

    assert "08003" in sqlstates(exc)  # connection_does_not_exist
    assert is_database_outage(exc)


async def test_a_role_out_of_connections_is_an_outage():
    superuser_sql(
        f"""
        SELECT 'CREATE ROLE {NO_CONNECTIONS_ROLE} LOGIN CONNECTION LIMIT 0 PASSWORD ''{NO_CONNECTIONS_ROLE}'''
        WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{NO_CONNECTIONS_ROLE}') \\gexec
        GRANT CONNECT ON DATABASE ecommerce TO {NO_CONNECTIONS_ROLE};
        """
    )
    url = DATABASE_URL.replace("machinery_test:machinery_test@", f"{NO_CONNECTIONS_ROLE}:{NO_CONNECTIONS_ROLE}@")

    exc = await raised(select_one(url))

    assert sqlstates(exc) == {"53300"}  # too_many_connections
    assert is_database_outage(exc)


@pytest.mark.parametrize(
    ("sql", "sqlstate"),
    [
        ("SELECT 1/0", "22012"),  # division_by_zero: a bug in the handler
        ("SELECT * FROM no_such_table", "42P01"),  # undefined_table: a bug or a missing migration
        ("SELEC 1", "42601"),  # syntax_error
        (f"INSERT INTO effects VALUES ('{ZERO}', 'k', 1), ('{ZERO}', 'k', 1)", "23505"),  # unique_violation
    ],
)
async def test_a_failing_statement_is_not_an_outage(db, sql, sqlstate):
    async with db.engine.connect() as conn:
        exc = await raised(conn.execute(text(sql)))

    assert sqlstate in sqlstates(exc)
    assert not is_database_outage(exc)


async def test_a_statement_timeout_is_not_an_outage(db):
    async with db.engine.connect() as conn:
        await conn.execute(text("SET statement_timeout = 50"))
        exc = await raised(conn.execute(text("SELECT pg_sleep(1)")))

    assert "57014" in sqlstates(exc)  # query_canceled: retried with the record's budget
    assert not is_database_outage(exc)
