"""Database engine and sessions. Built by each process at start-up, never at import time."""

from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Protocol, TypeVar, cast

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.outage import is_database_outage
from shared.settings import ServiceSettings

T = TypeVar("T")
_DRIVER = "shared.db.driver_connection"


def create_engine(settings: ServiceSettings, *, role: str = "app") -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # Off by default: a ping is a round trip before every checkout, and `_outage_is_a_disconnect`
        # already throws away a dead connection (and the pool's older ones) the first time it fails.
        pool_pre_ping=settings.db_pool_pre_ping,
        connect_args={
            "ssl": settings.db_ssl,
            "server_settings": {
                "search_path": settings.db_schema,
                "application_name": f"{settings.service_name}-{role}",
            },
        },
    )
    event.listen(engine.sync_engine, "handle_error", _outage_is_a_disconnect)
    return engine


def _outage_is_a_disconnect(context: ExceptionContext) -> None:
    """SQLAlchemy's asyncpg dialect calls a connection lost only when its socket is closed. One whose
    server is shutting down, or whose protocol was left mid-exchange ("another operation is in
    progress"), would go back to the pool and fail every request it serves. Marked as a disconnect,
    it is thrown away, and so are the pool's connections older than it (they saw the same outage)."""
    if is_database_outage(context.original_exception):
        context.is_disconnect = True


class DriverConnection:
    """The asyncpg connection under a session, in the session's transaction. The workers' hot
    statements run on it: SQLAlchemy's execute costs about twice the CPU of asyncpg's own for the
    same statement (docs/numbers.md), and a worker transaction runs a handful of them per batch.
    jsonb parameters are JSON text and jsonb results come back decoded (the dialect's codecs).

    A statement that fails like an outage invalidates the SQLAlchemy connection, as
    `_outage_is_a_disconnect` does for SQLAlchemy's own statements, which this one never sees:
    otherwise the dead connection would go back to the pool and fail every later checkout."""

    def __init__(self, connection: AsyncConnection, driver: asyncpg.Connection) -> None:
        self._connection = connection
        self._driver = driver

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._run(self._driver.fetch(query, *args))

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._run(self._driver.fetchval(query, *args))

    async def execute(self, query: str, *args: Any) -> str:
        return await self._run(self._driver.execute(query, *args))

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None:
        await self._run(self._driver.executemany(query, args))

    async def _run(self, statement: Awaitable[T]) -> T:
        try:
            return await statement
        except Exception as exc:
            if is_database_outage(exc):
                await self._connection.invalidate(exc)
            raise


class _LazyBegin(Protocol):
    """What driver_connection uses of SQLAlchemy's asyncpg adapter (AsyncAdapt_asyncpg_connection)."""

    _transaction: object | None  # the driver's transaction; None until the adapter has sent BEGIN

    def _start_transaction(self) -> Awaitable[None]: ...


async def driver_connection(session: AsyncSession) -> DriverConnection:
    """The session's DriverConnection, the same one for the whole of its transaction (the claim, the
    unit of work and the outbox writer each ask for it; building it costs ~50 µs)."""
    cached: tuple[object, DriverConnection] | None = session.info.get(_DRIVER)  # as stored below
    if cached is not None and cached[0] is session.get_transaction():
        return cached[1]
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = DriverConnection(connection, raw.driver_connection)
    # Typed as any DBAPI connection; with the asyncpg dialect (create_engine's only one) it is the
    # dialect's adapter, an untyped class: the private part used below is spelt out by _LazyBegin.
    adapter = cast(_LazyBegin, raw.dbapi_connection)
    # The dialect's adapter sends BEGIN lazily, before its own first statement: a statement sent on
    # the driver first would run outside the transaction (autocommitted, never rolled back). No public
    # call begins it without a statement of its own; tests/integration/test_database_engine.py checks.
    if adapter._transaction is None:
        await driver._run(adapter._start_transaction())
    session.info[_DRIVER] = (session.get_transaction(), driver)
    return driver


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq-style DSN asyncpg wants, from SQLAlchemy's URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
