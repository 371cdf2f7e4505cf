"""Database engine and sessions. Built by each process at start-up, never at import time."""

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.settings import ServiceSettings


def create_engine(settings: ServiceSettings, *, role: str = "app") -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        connect_args={
            "server_settings": {
                "search_path": settings.db_schema,
                "application_name": f"{settings.service_name}-{role}",
            }
        },
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq-style DSN asyncpg wants, from SQLAlchemy's URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
