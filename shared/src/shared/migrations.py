"""Alembic's online migration run, written once: each service's `env.py` calls `run_migrations`.

Migrations run as the schema's owner role (`migration_database_url`), never as the role the service
runs as, which may not change its schema (infra/postgres/init.sql); inside the service's own schema
(the alembic_version table too); and they wait for the database first, so a service's pre-start step
can run them while Postgres is starting.
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
            url=owner_url(settings),
            target_metadata=target_metadata,
            version_table_schema=settings.db_schema,
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(settings, target_metadata))


def owner_url(settings: ServiceSettings) -> str:
    if settings.migration_database_url is None:
        prefix = settings.model_config.get("env_prefix", "")
        raise RuntimeError(
            f"migrations run as the schema's owner: set {prefix}MIGRATION_DATABASE_URL (docs/runbook.md)"
        )
    return settings.migration_database_url


async def _run_online(settings: ServiceSettings, target_metadata: MetaData) -> None:
    engine = create_async_engine(
        owner_url(settings),
        connect_args={
            "ssl": settings.db_ssl,
            "server_settings": {
                "search_path": settings.db_schema,
                "application_name": f"{settings.service_name}-migrate",
            },
        },
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
