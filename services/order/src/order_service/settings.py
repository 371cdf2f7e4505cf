"""The order service's settings: environment variables prefixed ORDER_, defaults fit the local stack."""

from pydantic_settings import SettingsConfigDict
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ORDER_", extra="ignore", frozen=True)

    service_name: str = "order"
    database_url: str = "postgresql+asyncpg://order_svc:order_svc@127.0.0.1:5433/ecommerce"
    db_schema: str = "orders"
    http_port: int = 8001
    relay_metrics_port: int = 9111
    worker_metrics_port: int = 9112
