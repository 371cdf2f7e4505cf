"""The lag exporter's replication slot and relay mode metrics (shared.lag_exporter), without Postgres:
what it serves for a measurement, what it forgets, and the settings that turn them on."""

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from shared.lag_exporter import LagExporterSettings, LagGauges
from shared.replication_slots import SlotLag


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_each_slot_is_served_with_its_lag_in_bytes_and_whether_it_is_active():
    registry = CollectorRegistry()
    gauges = LagGauges(registry)

    gauges.publish_slots([SlotLag("order_outbox_slot", True, 4096), SlotLag("payment_outbox_slot", False, 2**31)])

    assert value(registry, "pg_replication_slot_lag_bytes", slot="order_outbox_slot") == 4096
    assert value(registry, "pg_replication_slot_active", slot="order_outbox_slot") == 1
    assert value(registry, "pg_replication_slot_lag_bytes", slot="payment_outbox_slot") == 2**31
    assert value(registry, "pg_replication_slot_active", slot="payment_outbox_slot") == 0


def test_a_dropped_slot_is_removed_not_left_at_its_last_lag():
    registry = CollectorRegistry()
    gauges = LagGauges(registry)
    gauges.publish_slots([SlotLag("order_outbox_slot", False, 10**9), SlotLag("payment_outbox_slot", True, 0)])

    gauges.publish_slots([SlotLag("payment_outbox_slot", True, 128)])

    assert value(registry, "pg_replication_slot_lag_bytes", slot="order_outbox_slot") is None
    assert value(registry, "pg_replication_slot_active", slot="order_outbox_slot") is None
    assert value(registry, "pg_replication_slot_lag_bytes", slot="payment_outbox_slot") == 128


def test_the_relay_mode_is_served_as_one_labelled_series():
    registry = CollectorRegistry()
    gauges = LagGauges(registry)

    gauges.publish_relay_mode("debezium")

    assert value(registry, "outbox_relay_mode", relay="debezium") == 1
    assert value(registry, "outbox_relay_mode", relay="builtin") is None


def test_by_default_the_relay_is_builtin_and_no_slot_is_measured(monkeypatch):
    for name in ("LAG_EXPORTER_RELAY", "LAG_EXPORTER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)

    settings = LagExporterSettings()

    assert (settings.relay, settings.database_url) == ("builtin", None)


def test_a_relay_other_than_builtin_or_debezium_is_refused(monkeypatch):
    monkeypatch.setenv("LAG_EXPORTER_RELAY", "maxwell")

    with pytest.raises(ValidationError, match="relay"):
        LagExporterSettings()


def test_production_refuses_the_monitor_roles_development_password():
    with pytest.raises(ValidationError, match="database_url uses the development password"):
        LagExporterSettings(
            environment="production",
            kafka_password="a-real-one",
            database_url="postgresql://monitor:monitor@db:5432/ecommerce",
        )

    accepted = LagExporterSettings(
        environment="production", kafka_password="a-real-one", database_url="postgresql://monitor:s3cret@db/ecommerce"
    )
    assert accepted.database_url
