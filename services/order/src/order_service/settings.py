"""The order service's settings: environment variables prefixed ORDER_, defaults fit the local stack."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from shared.settings import ServiceSettings, outside_production


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ORDER_", extra="ignore", frozen=True)

    service_name: str = "order"
    database_url: str = "postgresql+asyncpg://order_svc:order_svc@127.0.0.1:5433/ecommerce"
    migration_database_url: str | None = outside_production(
        "postgresql+asyncpg://order_owner:order_owner@127.0.0.1:5433/ecommerce"
    )
    db_schema: str = "orders"
    http_port: int = 8001
    relay_metrics_port: int = 9111
    worker_metrics_port: int = 9112

    # The payment service's public key (raw X25519, 32 bytes): every payment token is sealed to it
    # before the order, its events or its outbox see it, so only the payment service can read one.
    # Relative paths are from the working directory: the repository root under `make up`.
    payment_token_public_key_file: Path = Path(".run/keys/payment-token.pub")

    # The saga deadline: an order still PENDING or AWAITING_PAYMENT this long after it was placed is
    # cancelled with reason saga_timeout, which releases its stock and refunds or voids its payment.
    # A saga normally ends in well under a second; 120 s also outlasts what the system rides out
    # (a Postgres restart, a broker failover, a slow gateway), so only a saga that lost a message
    # (a dead-lettered event) ends by its deadline.
    saga_deadline_s: float = Field(default=120.0, gt=0)
    # The worker looks for overdue orders this often, and cancels at most this many per transaction
    # (a full batch is followed by the next one at once).
    saga_sweep_interval_s: float = Field(default=5.0, gt=0)
    saga_sweep_batch_size: int = Field(default=100, ge=1)
