"""Alembic environment of the inventory schema: runs as its owner role (INVENTORY_MIGRATION_DATABASE_URL), inside it."""

from inventory_service.adapters.tables import metadata
from inventory_service.settings import Settings
from shared.migrations import run_migrations

run_migrations(Settings(), metadata)
