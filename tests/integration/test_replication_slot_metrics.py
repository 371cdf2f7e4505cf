"""The replication slots' lag against the real Postgres, read as the lag exporter's `monitor` role
(CONNECT only: infra/postgres/init.sql): a logical slot that nobody reads holds back the WAL written
after it, and the exporter serves that as pg_replication_slot_lag_bytes with the slot inactive; a
dropped slot's series go. The role reads the slots and nothing of the services' schemas."""

import asyncio
import configparser
import re
from pathlib import Path

import asyncpg
import pytest
from postgres_superuser import superuser_sql
from prometheus_client import CollectorRegistry
from shared.lag_exporter import LagExporterSettings, LagGauges, export_lag
from shared.replication_slots import SlotProbe

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]
TEST_SLOT = "x_test_lag_exporter_slot"
WAL_WRITTEN = 200_000  # bytes of WAL written after the slot, by a logical message


def local_monitor_url() -> str:
    """The URL the local lag exporter runs with (infra/supervisord.conf)."""
    config = configparser.RawConfigParser()
    config.read(REPO / "infra/supervisord.conf")
    found = re.search(r'LAG_EXPORTER_DATABASE_URL="([^"]+)"', config["program:lag-exporter"]["environment"])
    assert found, "the local lag exporter measures no slot"
    return found.group(1)


async def test_the_monitor_role_reads_the_slots_and_none_of_the_services_tables():
    probe = SlotProbe(local_monitor_url())
    try:
        slots = await probe.measure()
    finally:
        await probe.close()

    assert all(slot.lag_bytes >= 0 for slot in slots)
    connection = await asyncpg.connect(local_monitor_url())
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.fetchval("SELECT count(*) FROM orders.outbox")
    finally:
        await connection.close()


async def test_a_slot_nobody_reads_is_served_inactive_with_the_wal_written_since_as_its_lag(bootstrap_servers):
    """Creates a logical slot of its own (dropped at the end, whatever happens): run it alone, not
    while a session relies on there being no other slot."""
    registry = CollectorRegistry()
    gauges = LagGauges(registry)
    settings = LagExporterSettings(kafka_bootstrap_servers=bootstrap_servers, database_url=local_monitor_url())
    superuser_sql(f"SELECT pg_create_logical_replication_slot('{TEST_SLOT}', 'pgoutput')")
    try:
        # Transactional, so its commit writes the WAL out: pg_current_wal_lsn() is the written end; a
        # non-transactional message may still sit in the WAL buffers when the exporter measures.
        superuser_sql(f"SELECT pg_logical_emit_message(true, 'lag-exporter-test', repeat('x', {WAL_WRITTEN}))")

        await export_lag(settings, gauges, asyncio.Event(), rounds=1)

        lag = registry.get_sample_value("pg_replication_slot_lag_bytes", {"slot": TEST_SLOT})
        assert lag is not None and lag >= WAL_WRITTEN
        assert registry.get_sample_value("pg_replication_slot_active", {"slot": TEST_SLOT}) == 0
    finally:
        superuser_sql(
            f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{TEST_SLOT}'"
        )

    await export_lag(settings, gauges, asyncio.Event(), rounds=1)

    assert registry.get_sample_value("pg_replication_slot_lag_bytes", {"slot": TEST_SLOT}) is None
