"""The lag exporter's settings and gauges (shared.lag_exporter), without Kafka: what it serves for a
measurement, what it forgets, and the credentials production refuses."""

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from shared.kafka.lag import PartitionLag
from shared.kafka.security import development_password
from shared.lag_exporter import LagExporterSettings, LagGauges


def lag(group: str, partition: int, records: int, seconds: float) -> PartitionLag:
    return PartitionLag(group, "order-events", partition, committed=0, end=records, records=records, seconds=seconds)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_each_partition_of_each_group_is_served_in_records_and_seconds_with_every_end_offset():
    registry = CollectorRegistry()
    gauges = LagGauges(registry)

    gauges.publish(
        [lag("payment-service", 0, 12, 3.5), lag("inventory-service", 0, 0, 0.0)],
        {TopicPartition("order-events", 0): 12, TopicPartition("order-events.DLT", 0): 2},
    )

    labels = {"group": "payment-service", "topic": "order-events", "partition": "0"}
    assert value(registry, "kafka_consumergroup_lag", **labels) == 12
    assert value(registry, "kafka_consumergroup_lag_seconds", **labels) == 3.5
    assert value(registry, "kafka_consumergroup_lag", **{**labels, "group": "inventory-service"}) == 0
    assert value(registry, "kafka_topic_partition_end_offset", topic="order-events.DLT", partition="0") == 2


def test_a_partition_no_longer_measured_is_removed_not_left_at_its_last_value():
    registry = CollectorRegistry()
    gauges = LagGauges(registry)
    gauges.publish([lag("payment-service", 0, 5, 1.0), lag("payment-service", 1, 7, 2.0)], {})

    gauges.publish([lag("payment-service", 1, 0, 0.0)], {})

    gone = {"group": "payment-service", "topic": "order-events", "partition": "0"}
    assert value(registry, "kafka_consumergroup_lag", **gone) is None
    assert value(registry, "kafka_consumergroup_lag_seconds", **gone) is None
    assert value(registry, "kafka_consumergroup_lag", **{**gone, "partition": "1"}) == 0


def test_the_exporter_connects_as_the_monitor_and_serves_on_the_loopback_port_9150_by_default():
    settings = LagExporterSettings()

    config = settings.kafka_client_config()
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("monitor", "monitor-kafka-dev")
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", 9150)
    assert settings.groups == ("order-service", "payment-service", "inventory-service")


def test_the_settings_come_from_lag_exporter_variables(monkeypatch):
    monkeypatch.setenv("LAG_EXPORTER_INTERVAL_S", "2.5")
    monkeypatch.setenv("LAG_EXPORTER_GROUPS", '["order-service"]')

    settings = LagExporterSettings()

    assert (settings.interval_s, settings.groups) == (2.5, ("order-service",))


def test_production_refuses_no_password_the_development_one_and_an_unauthenticated_connection():
    with pytest.raises(ValidationError, match="kafka_password is unset or the development one"):
        LagExporterSettings(environment="production")
    with pytest.raises(ValidationError, match="kafka_password is unset or the development one"):
        LagExporterSettings(environment="production", kafka_password=development_password("monitor"))
    with pytest.raises(ValidationError, match="kafka_security_protocol must authenticate"):
        LagExporterSettings(environment="production", kafka_password="s3cret", kafka_security_protocol="PLAINTEXT")
    assert LagExporterSettings(environment="production", kafka_password="s3cret").kafka_password == "s3cret"
