"""The lag exporter (`lag-exporter`): one small process that measures the services' consumer lag
every few seconds (shared.kafka.lag) and serves it to Prometheus, with the end offset of every event
and dead-letter topic (a DLT's growth is its end offset's rate).

One process rather than each worker: a worker knows only its own partitions and stops reporting
exactly when it is stuck or gone, which is when lag matters; the exporter sees every group from
outside, as the `monitor` principal, which may describe the groups and topics and read nothing.

A failed round (a broker outage, a timeout) is logged and the last values stay served, with
`lag_exporter_last_success_timestamp_seconds` telling how old they are; the next round starts new
clients. SIGTERM stops it between rounds.

Two more things the alerts need, both about the outbox's relay:
- `outbox_relay_mode{relay}`: which relay the deployment runs (RELAY=builtin|debezium, set by
  stack.sh and compose). Under debezium there are no relay processes, so the alerts on them
  (RelayLeadersNotOne, OutboxBacklogOld, their TargetDown) are silenced by it.
- With `database_url` set, each replication slot's lag in bytes and whether it is active
  (shared.replication_slots), every round; unset, no slot metrics. A failed slot measurement is
  logged and leaves the Kafka measurements alone (and the other way round).
"""

import asyncio
import time
from typing import Any, Literal

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.events.topics import TOPIC_SPECS
from shared.kafka.acls import MONITOR
from shared.kafka.lag import SERVICE_GROUPS, LagProbe, PartitionLag
from shared.kafka.security import LOCAL_KAFKA, SecurityProtocol, client_config, development_password
from shared.logging import configure_logging, get_logger
from shared.metrics import serve_metrics
from shared.replication_slots import SlotLag, SlotProbe
from shared.runtime import run_until_signalled
from shared.settings import refuse_weak_kafka_identity

log = get_logger(__name__)

EVERY_TOPIC = tuple(spec.name for spec in TOPIC_SPECS)  # the event topics and their DLTs


class LagExporterSettings(BaseSettings):
    """Environment variables prefixed LAG_EXPORTER_; the defaults fit the local stack."""

    model_config = SettingsConfigDict(env_prefix="LAG_EXPORTER_", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    kafka_bootstrap_servers: str = LOCAL_KAFKA
    kafka_security_protocol: SecurityProtocol = "SASL_PLAINTEXT"
    kafka_username: str = MONITOR
    # The development password outside production (as a service's, shared.settings); production
    # must set it and refuses the development one.
    kafka_password: str | None = Field(
        default_factory=lambda data: (
            None if data.get("environment") == "production" else development_password(data["kafka_username"])
        )
    )
    groups: tuple[str, ...] = tuple(SERVICE_GROUPS)

    metrics_host: str = "127.0.0.1"  # loopback unless a deployment's scraper needs another address
    metrics_port: int = 9150
    # A round takes tens of milliseconds; Prometheus scrapes every 15 s or so.
    interval_s: float = Field(default=5.0, gt=0)
    # A round that takes longer (a broker that accepts connections but does not answer) is abandoned.
    round_timeout_s: float = Field(default=30.0, gt=0)

    # Who publishes the outboxes (stack.sh's RELAY, compose's COMPOSE_PROFILES): served as
    # outbox_relay_mode, which gates the alerts on the built-in relays.
    relay: Literal["builtin", "debezium"] = "builtin"
    # A libpq URL (postgresql://monitor:...@host:port/ecommerce) to read the replication slots' lag;
    # None: no slot metrics. The role needs CONNECT alone (infra/postgres/init.sql's `monitor`).
    database_url: str | None = None

    @model_validator(mode="after")
    def _no_development_password_in_production(self) -> "LagExporterSettings":
        refuse_weak_kafka_identity(
            self.environment, self.kafka_username, self.kafka_password, self.kafka_security_protocol
        )
        if self.environment == "production" and self.database_url and ":monitor@" in self.database_url:
            raise ValueError("database_url uses the development password; set a real one in production")
        return self

    def kafka_client_config(self) -> dict[str, Any]:
        return client_config(
            self.kafka_bootstrap_servers, self.kafka_username, self.kafka_password or "", self.kafka_security_protocol
        )


class LagGauges:
    """The exporter's metrics (in `registry`: no other process exports them). A series whose
    partition or group is no longer measured is removed, not left at its last value."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.records = Gauge(
            "kafka_consumergroup_lag",
            "Records of the partition the group has still to consume (end offset - its position)",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.seconds = Gauge(
            "kafka_consumergroup_lag_seconds",
            "Age of the oldest record of the partition the group has not consumed (0 when caught up)",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.end_offset = Gauge(
            "kafka_topic_partition_end_offset",
            "Log end offset (high watermark) of every partition of the event and dead-letter topics",
            ["topic", "partition"],
            registry=registry,
        )
        self.last_success = Gauge(
            "lag_exporter_last_success_timestamp_seconds",
            "When the exporter last measured every group and topic (the values served are that old)",
            registry=registry,
        )
        self.round_seconds = Gauge(
            "lag_exporter_round_seconds", "How long the last successful round took", registry=registry
        )
        self.relay_mode = Gauge(
            "outbox_relay_mode",
            "1 for the relay that publishes the outboxes: builtin (the services' relays) or debezium",
            ["relay"],
            registry=registry,
        )
        self.slot_lag = Gauge(
            "pg_replication_slot_lag_bytes",
            "WAL the replication slot holds back: from its confirmed position to the current one, in bytes",
            ["slot"],
            registry=registry,
        )
        self.slot_active = Gauge(
            "pg_replication_slot_active",
            "1 while a consumer (a Debezium connector's task) is attached to the replication slot",
            ["slot"],
            registry=registry,
        )
        self._lag_series: set[tuple[str, str, str]] = set()
        self._end_series: set[tuple[str, str]] = set()
        self._slots: set[str] = set()

    def publish(self, lags: list[PartitionLag], ends: dict[TopicPartition, int]) -> None:
        lag_series = set()
        for lag in lags:
            labels = (lag.group, lag.topic, str(lag.partition))
            self.records.labels(*labels).set(lag.records)
            self.seconds.labels(*labels).set(lag.seconds)
            lag_series.add(labels)
        for labels in self._lag_series - lag_series:
            self.records.remove(*labels)
            self.seconds.remove(*labels)
        end_series = set()
        for tp, end in ends.items():
            end_labels = (tp.topic, str(tp.partition))
            self.end_offset.labels(*end_labels).set(end)
            end_series.add(end_labels)
        for end_labels in self._end_series - end_series:
            self.end_offset.remove(*end_labels)
        self._lag_series, self._end_series = lag_series, end_series

    def publish_relay_mode(self, relay: str) -> None:
        self.relay_mode.labels(relay).set(1)

    def publish_slots(self, slots: list[SlotLag]) -> None:
        """Every slot that exists now; a dropped slot's series are removed."""
        for slot in slots:
            self.slot_lag.labels(slot.slot).set(slot.lag_bytes)
            self.slot_active.labels(slot.slot).set(1 if slot.active else 0)
        current = {slot.slot for slot in slots}
        for gone in self._slots - current:
            self.slot_lag.remove(gone)
            self.slot_active.remove(gone)
        self._slots = current


async def export_lag(
    settings: LagExporterSettings, gauges: LagGauges, stop: asyncio.Event, *, rounds: int | None = None
) -> None:
    """Measure and publish every `interval_s` until `stop` is set (or after `rounds`, for a test)."""
    probe: LagProbe | None = None
    slots = SlotProbe(settings.database_url) if settings.database_url else None
    done = 0
    try:
        while not stop.is_set():
            started = time.monotonic()
            if slots is not None:
                await _measure_slots(slots, gauges, settings.round_timeout_s)
            try:
                if probe is None:
                    probe = LagProbe(settings.kafka_client_config())
                    await probe.start()
                async with asyncio.timeout(settings.round_timeout_s):
                    lags = await probe.measure(settings.groups)
                    ends = await probe.end_offsets(EVERY_TOPIC)
                gauges.publish(lags, ends)
                gauges.last_success.set(time.time())
                gauges.round_seconds.set(time.monotonic() - started)
            except Exception as exc:  # the exporter outlives any one round; the next one starts afresh
                if isinstance(exc, KafkaError | OSError | TimeoutError):
                    log.warning("lag round failed; serving the last values", error=repr(exc))
                else:
                    log.exception("lag round failed; serving the last values")
                if probe is not None:
                    await _close_quietly(probe)
                    probe = None
            done += 1
            if rounds is not None and done >= rounds:
                break
            pause = settings.interval_s - (time.monotonic() - started)
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, pause))
            except TimeoutError:
                pass
    finally:
        if probe is not None:
            await _close_quietly(probe)
        if slots is not None:
            await slots.close()


async def _measure_slots(slots: SlotProbe, gauges: LagGauges, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            gauges.publish_slots(await slots.measure())
    except Exception as exc:  # the database may be down while Kafka is not: its values stay as they were
        log.warning("replication slot round failed; serving the last values", error=repr(exc))


async def _close_quietly(probe: LagProbe) -> None:
    try:
        await probe.close()
    except Exception as exc:
        log.warning("closing the lag probe failed", error=repr(exc))


def main() -> None:
    settings = LagExporterSettings()
    configure_logging("monitoring", "lag-exporter", level=settings.log_level, fmt=settings.log_format)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    gauges = LagGauges()
    gauges.publish_relay_mode(settings.relay)
    log.info(
        "lag exporter started",
        groups=list(settings.groups),
        interval_s=settings.interval_s,
        relay=settings.relay,
        replication_slots=settings.database_url is not None,
    )
    run_until_signalled(lambda stop: export_lag(settings, gauges, stop))
