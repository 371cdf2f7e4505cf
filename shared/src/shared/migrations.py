"""Alembic's online migration run, written once: each service's `env.py` calls `run_migrations`.

Migrations run as the service's own role, inside its own schema (the alembic_version table too), and
wait for the database first, so a service's pre-start step can run them while Postgres is starting.
"""

import asyncio
import time

from alembic import context
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import ServiceSettings

WAIT_FOR_DATABASE_S = 60


def run_migrations(settings: ServiceSettings, target_metadata: MetaData) -> None:
    if context.is_offline_mode():
        context.configure(
            url=settings.database_url,
            target_metadata=target_metadata,
            version_table_schema=settings.db_schema,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(settings, target_metadata))


async def _run_online(settings: ServiceSettings, target_metadata: MetaData) -> None:
    engine = create_async_engine(
        settings.database_url, connect_args={"server_settings": {"search_path": settings.db_schema}}
    )
    deadline = time.monotonic() + WAIT_FOR_DATABASE_S
    try:
        while True:
            try:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)
        async with engine.begin() as conn:
            await conn.run_sync(_run_sync, settings, target_metadata)
    finally:
        await engine.dispose()


def _run_sync(conn: Connection, settings: ServiceSettings, target_metadata: MetaData) -> None:
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        version_table_schema=settings.db_schema,
        include_schemas=False,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
