"""The lag exporter against the real cluster, as the monitor principal: one round serves every
service group's partitions and every topic's end offsets; a round that cannot reach Kafka leaves the
last values served; the process serves /metrics and stops cleanly on SIGTERM."""

import asyncio
import os
import signal
import socket
import sys
import time

import httpx
from prometheus_client import CollectorRegistry
from shared.events.topics import PARTITIONS, TOPIC_SPECS
from shared.kafka.lag import SERVICE_GROUPS
from shared.lag_exporter import LagExporterSettings, LagGauges, export_lag

REPO_BIN = os.path.dirname(sys.executable)


def monitor_settings(bootstrap_servers: str, **overrides: object) -> LagExporterSettings:
    return LagExporterSettings(kafka_bootstrap_servers=bootstrap_servers, **overrides)  # type: ignore[arg-type]


def series(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    }


async def test_one_round_serves_every_service_groups_partitions_and_every_topics_end_offsets(bootstrap_servers):
    registry = CollectorRegistry()
    gauges = LagGauges(registry)
    before = time.time()

    await export_lag(monitor_settings(bootstrap_servers), gauges, asyncio.Event(), rounds=1)

    lag_partitions = {
        (dict(labels)["group"], dict(labels)["topic"]) for labels in series(registry, "kafka_consumergroup_lag")
    }
    assert lag_partitions == {(group, topic) for group, topics in SERVICE_GROUPS.items() for topic in topics}
    assert len(series(registry, "kafka_consumergroup_lag_seconds")) == 6 * PARTITIONS
    ends = series(registry, "kafka_topic_partition_end_offset")
    assert {dict(labels)["topic"] for labels in ends} == {spec.name for spec in TOPIC_SPECS}  # the DLTs too
    assert len(ends) == len(TOPIC_SPECS) * PARTITIONS
    assert registry.get_sample_value("lag_exporter_last_success_timestamp_seconds") >= before


async def test_a_round_that_cannot_reach_kafka_leaves_the_last_values_and_their_timestamp(bootstrap_servers):
    registry = CollectorRegistry()
    gauges = LagGauges(registry)
    await export_lag(monitor_settings(bootstrap_servers), gauges, asyncio.Event(), rounds=1)
    served = series(registry, "kafka_consumergroup_lag")
    succeeded_at = registry.get_sample_value("lag_exporter_last_success_timestamp_seconds")

    unreachable = monitor_settings("127.0.0.1:1", interval_s=0.1, round_timeout_s=5)
    await export_lag(unreachable, gauges, asyncio.Event(), rounds=2)  # returns: nothing raised

    assert series(registry, "kafka_consumergroup_lag") == served
    assert registry.get_sample_value("lag_exporter_last_success_timestamp_seconds") == succeeded_at


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_process_serves_the_lag_and_stops_cleanly_on_sigterm(bootstrap_servers, eventually, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "LAG_EXPORTER_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "LAG_EXPORTER_METRICS_PORT": str(port),
        "LAG_EXPORTER_INTERVAL_S": "1",
    }
    with (tmp_path / "lag-exporter.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            os.path.join(REPO_BIN, "lag-exporter"), env=env, stdout=log, stderr=log
        )
    try:

        async def measured() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.TransportError:
                return False
            served = 'kafka_consumergroup_lag_seconds{group="order-service"' in text
            return served and any(
                line.startswith("lag_exporter_last_success_timestamp_seconds ") and float(line.split()[1]) > 0
                for line in text.splitlines()
            )

        await eventually(measured, timeout=30, what="the exporter serves a measurement")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
