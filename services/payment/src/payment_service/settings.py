"""The payment service's settings: the shared ones under the PAYMENT_ prefix, with local defaults."""

from pathlib import Path

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict
from shared.settings import ServiceSettings, outside_production


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENT_", extra="ignore", frozen=True)

    service_name: str = "payment"
    database_url: str = "postgresql+asyncpg://payment_svc:payment_svc@127.0.0.1:5433/ecommerce"
    migration_database_url: str | None = outside_production(
        "postgresql+asyncpg://payment_owner:payment_owner@127.0.0.1:5433/ecommerce"
    )
    db_schema: str = "payments"
    http_port: int = 8002
    relay_metrics_port: int = 9121
    worker_metrics_port: int = 9122

    # The private half of the key the order service seals payment tokens to (raw X25519, 32 bytes):
    # only this service holds it. Losing it makes every sealed token unreadable (docs/security.md).
    # Relative paths are from the working directory: the repository root under `make up`.
    payment_token_private_key_file: Path = Path(".run/keys/payment-token.key")

    # "test": the built-in TestCardGateway (moves no money). Otherwise "package.module:factory", a
    # callable taking these settings and returning a PaymentGateway: how a real gateway plugs in.
    gateway: str = "test"
    # Fault injection for the test gateway only (docs/runbook.md): a file whose content `hang` or
    # `error` makes every gateway call hang or fail while it says so. Unset: no faults.
    gateway_fault_file: Path | None = None

    # The executor: gateway calls, outside any transaction, for the intents the handlers recorded.
    gateway_timeout_s: float = 5.0  # a call without an answer by then counts as failed, and is retried
    gateway_retry_backoff_s: float = 1.0  # after the first failed call; doubling...
    gateway_retry_backoff_max_s: float = 15.0  # ...up to this
    # How long a claimed intent is left to its executor: past it, an executor that died mid-call is
    # presumed dead and another one asks again (same key). Longer than the timeout.
    executor_lease_s: float = 15.0
    executor_sweep_interval_s: float = 1.0  # intents left by a crash or a failure are looked for this often
    executor_concurrency: int = 50  # gateway calls in flight at once (until their outcome is recorded)

    @model_validator(mode="after")
    def _real_gateway_in_production(self) -> "Settings":
        if self.environment == "production" and self.gateway == "test":
            raise ValueError("the test gateway moves no money; configure PAYMENT_GATEWAY in production")
        if self.gateway_fault_file is not None and self.gateway != "test":
            raise ValueError("PAYMENT_GATEWAY_FAULT_FILE works with the test gateway only")
        if self.executor_lease_s <= self.gateway_timeout_s:
            raise ValueError("executor_lease_s must be longer than gateway_timeout_s")
        return self
