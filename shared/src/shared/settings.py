"""Settings every service process reads from its environment, one prefix per service
(ORDER_, PAYMENT_, INVENTORY_), via pydantic-settings. Defaults fit the local stack."""

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kafka.security import LOCAL_KAFKA, SecurityProtocol, client_config, development_password


def outside_production(value: str) -> Any:
    """A field's default in development and test; in production the field is None unless it is set.
    For a secret the local stack may assume but a deployment gives only to the process that needs it."""
    return Field(default_factory=lambda data: None if data.get("environment") == "production" else value)


def refuse_weak_kafka_identity(environment: str, username: str, password: str | None, protocol: str) -> None:
    """In production a Kafka client (a service, the lag exporter) must authenticate, with a password
    that is set and is not the development one."""
    if environment != "production":
        return
    if password in (None, development_password(username)):
        raise ValueError("kafka_password is unset or the development one; set a real one in production")
    if protocol == "PLAINTEXT":
        raise ValueError("kafka_security_protocol must authenticate (SASL_SSL, SASL_PLAINTEXT) in production")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str
    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    database_url: str
    db_schema: str
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_pre_ping: bool = False
    # TLS to Postgres, as libpq's sslmode. The local stack talks to Postgres over loopback, where TLS
    # only costs CPU (measured: docs/numbers.md); a deployment whose database is on another host
    # sets require or verify-full, and production refuses less.
    db_ssl: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "disable"
    # The schema owner's URL: the migrations run as it (DDL), the API, relay and worker as database_url's
    # role (DML only; infra/postgres/init.sql). Only the migration step needs it: a service's default
    # (`outside_production`) is none in production, so no runtime process holds the owner's password.
    migration_database_url: str | None = None

    kafka_bootstrap_servers: str = LOCAL_KAFKA
    # Who the service is to Kafka: its own SCRAM principal, named as the service, which may do what
    # shared.kafka.acls grants it and nothing else. The password defaults to the development one
    # (shared.kafka.security.development_password) outside production; production must set it, and
    # refuses the development one. PLAINTEXT (no identity) is for a test's private cluster only.
    kafka_security_protocol: SecurityProtocol = "SASL_PLAINTEXT"
    kafka_username: str = Field(default_factory=lambda data: data["service_name"])
    kafka_password: str | None = Field(
        default_factory=lambda data: (
            None if data.get("environment") == "production" else development_password(data["kafka_username"])
        )
    )
    http_port: int
    # Where the API, and the relay's and worker's metrics, listen. Loopback by default: nothing answers
    # another machine unless a deployment says so (compose's containers listen on 0.0.0.0 inside their
    # network and publish on the host's loopback only).
    http_host: str = "127.0.0.1"
    metrics_host: str = "127.0.0.1"
    # The largest request body an API reads (shared.body_limit): a larger one is refused with a
    # 413 before anything parses it. The largest legitimate body, an order of 50 lines, is under 8 KiB.
    http_max_body_bytes: int = Field(default=64 * 1024, ge=1)

    # Bearer tokens (shared.auth): who signs them (iss), whom they are for (aud), and where the public
    # key is: the identity provider's JWKS URL, or else a PEM file (relative to the working
    # directory, the repository root under the local supervisor; infra/scripts/dev_keys.py makes it).
    auth_issuer: str = "ecommerce-dev"
    auth_audience: str = "ecommerce"
    auth_jwks_url: str | None = None
    auth_public_key_file: Path | None = Path(".run/keys/auth-signing.pub.pem")
    relay_metrics_port: int
    worker_metrics_port: int

    # Producer (relay and dead-lettering): durable and ordered per key, tuned for throughput.
    producer_acks: Literal["all", "1", "0"] = "all"
    producer_enable_idempotence: bool = True
    producer_compression_type: Literal["lz4", "gzip", "snappy", "zstd", "none"] = "lz4"
    # Every produce request wakes the followers' and the consumers' fetches, and on this co-located
    # cluster each request costs the brokers a millisecond or two: 50 ms collects more records per
    # request (docs/numbers.md, "Batching by the clock"). A latency-bound, lightly loaded deployment
    # sets 5-20.
    producer_linger_ms: int = 50
    producer_max_batch_size: int = 32 * 1024
    producer_request_timeout_ms: int = 30_000

    # Relay
    # Rows per fetch, send and mark. Draining a backlog, the per-batch costs (the ack round trip, the
    # mark's statement) are what keep the relay below a plain producer: 5000 measured 0.8x, 1000 0.67x.
    relay_batch_size: int = 5000
    relay_poll_interval_s: float = 1.0
    relay_lock_retry_s: float = 1.0
    relay_published_retention_s: float = 3600.0
    # Every interval the relay purges published rows past their retention, a chunk per transaction,
    # one chunk after each batch until a chunk comes back short: it deletes far faster (about 100,000
    # rows/s measured) than it publishes, so the table stays at about rate x retention rows.
    relay_purge_interval_s: float = 10.0
    relay_purge_chunk_size: int = 10_000
    # Traces (shared.tracing): at most this many publish spans a second. A recorded span costs the relay
    # more CPU (about 80 us) than publishing the row (50-60 us), so while it drains a backlog most rows
    # get none (their traces miss only the relay's hop); at the saga's rates, every row gets one.
    relay_trace_spans_per_s: float = Field(default=100.0, ge=0)

    # Consumer
    consumer_group: str | None = None
    consumer_max_poll_records: int = 500
    # A fetch is answered every fetch_max_wait_ms with what arrived meanwhile, not at each record
    # (min bytes more than a poll's worth): fetches by the clock, so a worker decodes and handles
    # batches, and the brokers answer the same number of fetches whatever the rate. It costs up to
    # 50 ms a hop at low rates; fetch_min_bytes 1 answers at the first record.
    consumer_fetch_min_bytes: int = 1024 * 1024
    consumer_fetch_max_wait_ms: int = 50
    consumer_session_timeout_ms: int = 10_000
    consumer_heartbeat_interval_ms: int = 3_000
    consumer_max_poll_interval_ms: int = 300_000
    consumer_retry_attempts: int = 3
    consumer_retry_backoff_s: float = 1.0
    consumer_retry_backoff_multiplier: float = 1.0
    consumer_retry_backoff_max_s: float = 10.0
    # While the database is away, a record tries again this often (not spending its retry budget).
    consumer_outage_retry_s: float = 1.0
    consumer_processed_retention_s: float = 8 * 24 * 3600.0  # longer than the topics' 7 days
    consumer_purge_interval_s: float = 3600.0
    consumer_purge_batch_size: int = 1000  # rows per purge transaction, so none of them runs long
    # Finished offsets are committed this often (also the longest the poll loop waits for records).
    consumer_commit_interval_ms: int = 200
    # On a rebalance or a stop, how long a partition's record in hand may take to finish and have its
    # offset committed; past that, the partition moves on and its next owner redelivers the record.
    # Below max_poll_interval_ms, which is also how long the group waits for members to rejoin.
    consumer_handoff_grace_s: float = 10.0
    # Records handled in one transaction, the batches of every partition's lane together (1: one
    # transaction per record), and how many such transactions a worker may run at a time. It runs
    # one while they are quick (what queues meanwhile goes into the next, so batches grow with the
    # load); the next slot opens once the ones before have run for consumer_slow_transaction_ms, so a
    # record slow on a lock or in its handler holds only the records grouped with it.
    consumer_max_batch_size: int = 500
    consumer_transactions_in_flight: int = 2
    consumer_slow_transaction_ms: int = Field(default=200, ge=0)

    @model_validator(mode="after")
    def _no_development_passwords_in_production(self) -> "ServiceSettings":
        if self.environment == "production" and f":{self.service_name}_svc@" in self.database_url:
            raise ValueError("database_url uses the development password; set a real one in production")
        owner_url = self.migration_database_url or ""
        if self.environment == "production" and f":{self.service_name}_owner@" in owner_url:
            raise ValueError("migration_database_url uses the development password; set a real one in production")
        if self.environment == "production" and self.db_ssl in ("disable", "prefer"):
            raise ValueError("db_ssl must be require, verify-ca or verify-full in production")
        refuse_weak_kafka_identity(
            self.environment, self.kafka_username, self.kafka_password, self.kafka_security_protocol
        )
        return self

    @model_validator(mode="after")
    def _handoff_grace_within_the_rebalance_timeout(self) -> "ServiceSettings":
        # A member still handing over when the group's rebalance timeout (max.poll.interval) ends is
        # dropped from the group, and its commit of the records in hand fails.
        if self.consumer_handoff_grace_s * 1000 >= self.consumer_max_poll_interval_ms:
            raise ValueError("consumer_handoff_grace_s must be shorter than consumer_max_poll_interval_ms")
        return self

    @property
    def group_id(self) -> str:
        return self.consumer_group or f"{self.service_name}-service"

    def kafka_client_config(self) -> dict[str, Any]:
        """The address and identity every Kafka client of the service is built with."""
        return client_config(
            self.kafka_bootstrap_servers,
            self.kafka_username,
            self.kafka_password or "",
            self.kafka_security_protocol,
        )

    def producer_config(self) -> dict[str, Any]:
        return {
            **self.kafka_client_config(),
            "client_id": f"{self.service_name}-producer",
            "acks": "all" if self.producer_acks == "all" else int(self.producer_acks),
            "enable_idempotence": self.producer_enable_idempotence,
            "compression_type": (None if self.producer_compression_type == "none" else self.producer_compression_type),
            "linger_ms": self.producer_linger_ms,
            "max_batch_size": self.producer_max_batch_size,
            "request_timeout_ms": self.producer_request_timeout_ms,
        }

    def consumer_config(self) -> dict[str, Any]:
        return {
            **self.kafka_client_config(),
            "client_id": f"{self.service_name}-worker",
            "group_id": self.group_id,
            "enable_auto_commit": False,  # offsets are committed only after the database commit
            "auto_offset_reset": "earliest",
            "max_poll_records": self.consumer_max_poll_records,
            "fetch_min_bytes": self.consumer_fetch_min_bytes,
            "fetch_max_wait_ms": self.consumer_fetch_max_wait_ms,
            "session_timeout_ms": self.consumer_session_timeout_ms,
            "heartbeat_interval_ms": self.consumer_heartbeat_interval_ms,
            "max_poll_interval_ms": self.consumer_max_poll_interval_ms,
        }
