"""Alembic runs this: migrate the `orders` schema as its owner role (ORDER_MIGRATION_DATABASE_URL)."""

from logging.config import fileConfig

from alembic import context
from order_service.adapters.tables import metadata
from order_service.settings import Settings
from shared.migrations import run_migrations

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

run_migrations(Settings(), metadata)
