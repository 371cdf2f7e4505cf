"""Alembic environment of the payments schema: runs as the service's role, inside its schema."""

from payment_service.adapters.tables import metadata
from payment_service.settings import Settings
from shared.migrations import run_migrations

run_migrations(Settings(), metadata)
