"""The contract between the two relays: an event written to the outbox reaches Kafka the same through
Debezium (Kafka Connect, the Outbox Event Router and infra/connect/connector.json) as through the
built-in relay: the same topic, key bytes, value bytes and headers (names, bytes and order), so
consumers decode both alike.

`make test` runs them through `make test-debezium` (or `pytest -m debezium tests/integration/debezium`);
the `debezium` marker keeps them out of a bare `pytest` run, which would start a Connect worker.
"""

import asyncio
import time
import uuid
from collections import defaultdict

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from conftest import SCHEMA, SERVICE, Connector, connectors, event_id_of, records_of_events, released, write_to_outbox
from postgres_superuser import superuser_sql
from shared.events.base import Envelope
from shared.events.codec import decode
from shared.kafka.security import as_admin
from shared.outbox.relay import OutboxRelay
from shared.settings import ServiceSettings

pytestmark = [pytest.mark.infra, pytest.mark.debezium]

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def relay_builtin(dsn: str, *envelopes: Envelope) -> None:
    """The built-in relay's code, in-process on the test outbox, until it published these events'
    rows (it publishes the connector's heartbeat rows too, to their own topic)."""
    settings = ServiceSettings(
        service_name=f"cdc-contract-{uuid.uuid4().hex[:6]}",
        environment="test",
        database_url=dsn.replace("postgresql://", "postgresql+asyncpg://"),
        db_schema=SCHEMA,
        **as_admin(),  # the scratch topic, which no service's ACL grants
        http_port=0,
        relay_metrics_port=0,
        worker_metrics_port=0,
        relay_lock_retry_s=0.2,
        relay_poll_interval_s=0.2,
    )
    relay, stop = OutboxRelay(settings, dsn), asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    conn = await asyncpg.connect(dsn)
    try:
        ids = [e.event_id for e in envelopes]
        unpublished = f"SELECT count(*) FROM {SCHEMA}.outbox WHERE event_id = ANY($1) AND published_at IS NULL"
        deadline = time.monotonic() + 60
        while await conn.fetchval(unpublished, ids):
            assert not running.done(), "the relay stopped"
            assert time.monotonic() < deadline, "the built-in relay did not publish every event within 60 s"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
        stop.set()
        await running


async def read_records(topic: str, event_ids: set[str], count: int, timeout: float = 60) -> list[ConsumerRecord]:
    """The topic's records of these events, once there are `count` (fewer if `timeout` passes first)."""
    return await records_of_events(topic, event_ids, until=lambda records: len(records) >= count, timeout=timeout)


async def test_an_event_comes_out_of_either_relay_with_the_same_topic_key_value_and_headers(
    cdc_outbox: str, cdc_connector: Connector
):
    with_everything = released(
        correlation_id="contract-1", causation_id=uuid.uuid4(), traceparent=TRACEPARENT
    )  # every optional header
    with_the_least = released(correlation_id="contract-2")  # no causationId, no traceparent
    envelopes = (with_everything, with_the_least)

    await write_to_outbox(cdc_outbox, cdc_connector.topic, *envelopes)  # Debezium reads it from the WAL
    await relay_builtin(cdc_outbox, *envelopes)  # and the built-in relay from the table

    ids = {str(e.event_id) for e in envelopes}
    records = await read_records(cdc_connector.topic, ids, count=2 * len(envelopes))
    by_event = defaultdict(list)
    for record in records:
        by_event[event_id_of(record)].append(record)
    assert set(by_event) == ids
    for envelope in envelopes:
        builtin, debezium = by_event[str(envelope.event_id)]  # one from each relay, in either order
        assert (debezium.key, debezium.value, debezium.headers) == (builtin.key, builtin.value, builtin.headers)
        assert debezium.key == envelope.key.encode()
        assert decode(debezium.value, debezium.headers) == envelope


async def test_with_delete_on_insert_the_outbox_stays_empty_and_debezium_still_publishes_each_event(
    cdc_outbox: str, cdc_connector: Connector
):
    connectors.prepare_database(SERVICE, SCHEMA, delete_on_insert=True)
    try:
        envelope = released(correlation_id="delete-on-insert")
        await write_to_outbox(cdc_outbox, cdc_connector.topic, envelope)

        conn = await asyncpg.connect(cdc_outbox)
        try:
            rows = await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox WHERE event_id = $1", envelope.event_id)
            assert rows == 0, "the row was deleted in the transaction that inserted it"
        finally:
            await conn.close()
        (record,) = await read_records(cdc_connector.topic, {str(envelope.event_id)}, count=1)
        assert decode(record.value, record.headers) == envelope
    finally:
        connectors.prepare_database(SERVICE, SCHEMA, delete_on_insert=False)


async def test_while_the_outbox_is_quiet_the_slot_still_releases_the_wal_that_other_writes_make(
    cdc_outbox: str, cdc_connector: Connector
):
    """Postgres sends the connector nothing of the transactions that touch no published table, and
    the connector confirms only positions of records it published: without its heartbeat rows the
    slot would hold every byte of WAL written since the outbox's last event (in development: 1.2 GB
    in five minutes, the confirmed position not moving)."""
    conn = await asyncpg.connect(cdc_outbox)
    try:
        await conn.execute("CREATE TEMP TABLE busy AS SELECT generate_series(1, 10000) AS n")  # some WAL elsewhere
        written = await conn.fetchval("SELECT pg_current_wal_lsn()")
        confirmed = "SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2"
        deadline = time.monotonic() + 60  # a heartbeat every 10 s, offsets committed every 5 s
        while not await conn.fetchval(confirmed, written, connectors.slot_name(SERVICE)):
            assert time.monotonic() < deadline, f"the slot has not confirmed {written} within 60 s"
            await asyncio.sleep(1)
    finally:
        await conn.close()


async def test_logical_decoding_messages_in_the_wal_are_skipped_and_the_stream_goes_on(
    cdc_outbox: str, cdc_connector: Connector
):
    """pg_logical_emit_message writes to every slot's stream, whoever calls it (an extension, a
    monitoring probe, tests/integration/test_replication_slot_metrics.py). Debezium turns such a
    message into a record the outbox router cannot route, which failed the task until the connector
    excluded every message prefix (infra/connect/connector.json)."""
    superuser_sql(
        "SELECT pg_logical_emit_message(true, 'probe', 'in a transaction');"
        " SELECT pg_logical_emit_message(false, 'probe', 'alone');"
    )
    envelope = released(correlation_id="after-a-message")
    await write_to_outbox(cdc_outbox, cdc_connector.topic, envelope)

    (record,) = await read_records(cdc_connector.topic, {str(envelope.event_id)}, count=1)
    assert decode(record.value, record.headers) == envelope
    connectors.wait_until_running(cdc_connector.name, timeout=10)
