"""Database engine and sessions. Built by each process at start-up, never at import time."""

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.outage import is_database_outage
from shared.settings import ServiceSettings


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
            }
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


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq-style DSN asyncpg wants, from SQLAlchemy's URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
