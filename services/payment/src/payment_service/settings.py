"""The payment service's settings: the shared ones under the PAYMENT_ prefix, with local defaults."""

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENT_", extra="ignore", frozen=True)

    service_name: str = "payment"
    database_url: str = "postgresql+asyncpg://payment_svc:payment_svc@127.0.0.1:5433/ecommerce"
    db_schema: str = "payments"
    http_port: int = 8002
    relay_metrics_port: int = 9121
    worker_metrics_port: int = 9122

    # "test": the built-in TestCardGateway (moves no money). Otherwise "package.module:factory", a
    # callable taking these settings and returning a PaymentGateway: how a real gateway plugs in.
    gateway: str = "test"

    @model_validator(mode="after")
    def _real_gateway_in_production(self) -> "Settings":
        if self.environment == "production" and self.gateway == "test":
            raise ValueError("the test gateway moves no money; configure PAYMENT_GATEWAY in production")
        return self
