"""The inventory service's settings: the shared ones under the INVENTORY_ prefix, with local defaults."""

from pydantic_settings import SettingsConfigDict
from shared.settings import ServiceSettings, outside_production


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INVENTORY_", extra="ignore", frozen=True)

    service_name: str = "inventory"
    database_url: str = "postgresql+asyncpg://inventory_svc:inventory_svc@127.0.0.1:5433/ecommerce"
    migration_database_url: str | None = outside_production(
        "postgresql+asyncpg://inventory_owner:inventory_owner@127.0.0.1:5433/ecommerce"
    )
    db_schema: str = "inventory"
    http_port: int = 8003
    relay_metrics_port: int = 9131
    worker_metrics_port: int = 9132
