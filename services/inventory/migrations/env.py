"""Alembic environment of the inventory schema: runs as the service's role, inside its schema."""

from inventory_service.adapters.tables import metadata
from inventory_service.settings import Settings
from shared.migrations import run_migrations

run_migrations(Settings(), metadata)
