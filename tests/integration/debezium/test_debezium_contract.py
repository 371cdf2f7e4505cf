"""The contract between the two relays: an event written to the outbox reaches Kafka the same through
Debezium (Kafka Connect, the Outbox Event Router and infra/connect/connector.json) as through the
built-in relay: the same topic, key bytes, value bytes and headers (names, bytes and order), so
consumers decode both alike.

Run with `make test-debezium` (or `pytest -m debezium tests/integration/debezium`): the `debezium`
marker keeps these tests out of `make test` for now.
"""

import asyncio
import time
import uuid
from collections import defaultdict

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from conftest import SCHEMA, SERVICE, Connector, connectors
from shared.events.base import Envelope
from shared.events.codec import decode
from shared.events.inventory import StockReleased
from shared.events.order import OrderLine
from shared.kafka.security import admin_client_config, as_admin
from shared.outbox.relay import OutboxRelay
from shared.outbox.writer import INSERT_ROWS, outbox_row
from shared.settings import ServiceSettings

pytestmark = [pytest.mark.infra, pytest.mark.debezium]

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def released(**metadata: object) -> Envelope:
    lines = (OrderLine(sku="WIDGET", quantity=4),)
    return Envelope(event=StockReleased(order_id=uuid.uuid4(), items=lines), source="inventory", **metadata)  # type: ignore[arg-type]


async def write_to_outbox(dsn: str, topic: str, *envelopes: Envelope) -> None:
    """The outbox rows the writer makes (shared.outbox.writer), addressed to the test's topic."""
    rows = [outbox_row(envelope) | {"topic": topic} for envelope in envelopes]
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        await conn.execute(
            INSERT_ROWS,
            [row["event_id"] for row in rows],
            [row["event_type"] for row in rows],
            [row["topic"] for row in rows],
            [row["key"] for row in rows],
            [row["value"] for row in rows],
            [orjson.dumps(row["headers"]).decode() for row in rows],
        )
    finally:
        await conn.close()


async def relay_builtin(dsn: str, expected: int) -> None:
    """The built-in relay's code, in-process on the test outbox, until it published `expected` rows."""
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
    try:
        deadline = time.monotonic() + 60
        while relay.published < expected:
            assert not running.done(), "the relay stopped"
            assert time.monotonic() < deadline, f"the built-in relay published {relay.published} of {expected}"
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await running
    assert relay.published == expected


async def read_records(topic: str, event_ids: set[str], count: int, timeout: float = 60) -> list[ConsumerRecord]:
    """The topic's records of these events (the other tests' share the topic), once there are `count`."""
    consumer = AIOKafkaConsumer(**admin_client_config(), enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(partition, timeout_ms=500)
            records.extend(r for r in batches.get(partition, []) if event_id_of(r) in event_ids)
        return records
    finally:
        await consumer.stop()


def event_id_of(record: ConsumerRecord) -> str:
    return bytes(dict(record.headers)["eventId"]).decode()


async def test_an_event_comes_out_of_either_relay_with_the_same_topic_key_value_and_headers(
    cdc_outbox: str, cdc_connector: Connector
):
    with_everything = released(
        correlation_id="contract-1", causation_id=uuid.uuid4(), traceparent=TRACEPARENT
    )  # every optional header
    with_the_least = released(correlation_id="contract-2")  # no causationId, no traceparent
    envelopes = (with_everything, with_the_least)

    await write_to_outbox(cdc_outbox, cdc_connector.topic, *envelopes)  # Debezium reads it from the WAL
    await relay_builtin(cdc_outbox, expected=len(envelopes))  # and the built-in relay from the table

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
