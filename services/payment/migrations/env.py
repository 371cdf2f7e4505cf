"""Alembic environment of the payments schema: runs as its owner role (PAYMENT_MIGRATION_DATABASE_URL), inside it."""

from payment_service.adapters.tables import metadata
from payment_service.settings import Settings
from shared.migrations import run_migrations

run_migrations(Settings(), metadata)
