"""`ecommerce dlt list/show/redrive` and the saga reader's partition arithmetic against the real
Kafka, on topics each test creates as the admin and deletes (never the services' DLTs): the commands
take any topic name, so they are run here as an operator would, through the command line itself."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from ecommerce_ops.cli import app
from ecommerce_ops.dead_letters import REDRIVE_COUNT, REDRIVEN_FROM
from ecommerce_ops.kafka_reading import KafkaReader, ranges_since, read_ranges
from shared.consumer.dead_letter import dead_letter_for
from shared.events import Envelope, PaymentProcessed
from shared.events.codec import decode, encode
from shared.events.samples import sample_event
from shared.events.topics import dead_letter_topic
from shared.kafka.security import admin_client_config
from typer.testing import CliRunner

pytestmark = [pytest.mark.infra, pytest.mark.timeout(120)]
PARTITIONS = 3


class ReadOnlyTable(Exception):
    pass


@pytest.fixture
async def scratch_topic() -> AsyncIterator[str]:
    """A topic and its dead-letter topic of this test alone, deleted when it ends."""
    name = f"ops-it-{uuid.uuid4().hex[:10]}"
    names = [name, dead_letter_topic(name)]
    admin = AIOKafkaAdminClient(**admin_client_config(), client_id="ops-tests")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=PARTITIONS, replication_factor=3) for n in names])

        deadline = time.monotonic() + 30
        while not all(
            topic["error_code"] == 0 and len(topic["partitions"]) == PARTITIONS
            for topic in await admin.describe_topics(names)
        ):
            assert time.monotonic() < deadline, f"topics {names} not ready after 30 s"
            await asyncio.sleep(0.2)
        yield name
    finally:
        with suppress(Exception):
            await admin.delete_topics(names)
        await admin.close()


def payment_processed() -> Envelope:
    return Envelope.new(sample_event(PaymentProcessed).model_copy(update={"order_id": uuid.uuid4()}))


async def dead_letter(topic: str, envelope: Envelope, exc: Exception, *, group: str = "order-service"):
    """Publish the event on `topic` as its relay would (keyed, the default partitioner), then its
    dead letter as a worker of `group` writes it; the original record's metadata."""
    record = encode(envelope)
    producer = AIOKafkaProducer(**admin_client_config(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        original = await (await producer.send(topic, value=record.value, key=record.key, headers=record.headers))
        consumed = type(
            "Consumed",
            (),
            {
                "topic": topic,
                "partition": original.partition,
                "offset": original.offset,
                "timestamp": original.timestamp,
                "timestamp_type": 0,
                "key": record.key,
                "value": record.value,
                "headers": record.headers,
            },
        )()
        letter = dead_letter_for(consumed, exc, group)
        await (
            await producer.send(
                letter.topic, value=letter.value, key=letter.key, headers=letter.headers, partition=letter.partition
            )
        )
        return original
    finally:
        await producer.stop()


async def ecommerce(*args: str):
    """The command line run as `ecommerce ARGS` runs it (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def records_of(topic: str, key: bytes) -> list:
    async with KafkaReader(None) as kafka:
        tps = await kafka.partitions(topic)
        end = await kafka.consumer.end_offsets(tps)
        return await read_ranges(
            kafka.consumer, {tp: (0, end[tp]) for tp in tps if end[tp]}, keep=lambda r: r.key == key
        )


async def test_dlt_list_shows_each_dead_letter_with_its_event_order_cause_and_original_position(scratch_topic) -> None:
    envelope = payment_processed()
    original = await dead_letter(scratch_topic, envelope, ReadOnlyTable("cannot write orders"))

    result = await ecommerce("dlt", "list", scratch_topic, "--json")

    assert result.exit_code == 0, result.output
    (listed,) = json.loads(result.stdout)
    assert listed["topic"] == dead_letter_topic(scratch_topic)
    assert listed["partition"] == original.partition, "a dead letter keeps its record's partition"
    assert listed["event_id"] == str(envelope.event_id)
    assert listed["event_type"] == "PaymentProcessed"
    assert listed["order_id"] == str(envelope.event.order_id)
    assert listed["cause_class"].endswith("ReadOnlyTable")
    assert listed["cause_message"] == "cannot write orders"
    assert (listed["original_topic"], listed["original_partition"], listed["original_offset"]) == (
        scratch_topic,
        original.partition,
        original.offset,
    )
    assert listed["redrive_count"] == 0
    assert "sent_back" not in listed, "only counted when asked for (--sent-back reads the original partitions)"
    assert 0 <= listed["age_s"] < 60


async def test_dlt_show_decodes_every_header_and_prints_the_cause_the_stack_trace_and_the_value(scratch_topic) -> None:
    envelope = payment_processed()
    original = await dead_letter(scratch_topic, envelope, ReadOnlyTable("cannot write orders"))

    result = await ecommerce("dlt", "show", dead_letter_topic(scratch_topic), f"{original.partition}:0")

    assert result.exit_code == 0, result.output
    shown = result.stdout
    assert "ReadOnlyTable: cannot write orders" in shown
    header_lines = {line.split()[0]: line.split()[1:] for line in shown.splitlines() if line.strip()}
    assert header_lines["kafka_dlt-original-partition"] == [str(original.partition)], "binary headers as numbers"
    assert header_lines["kafka_dlt-original-offset"] == [str(original.offset)]
    assert header_lines["kafka_dlt-original-consumer-group"] == ["order-service"]
    assert header_lines["eventId"] == [str(envelope.event_id)]
    assert "ReadOnlyTable: cannot write orders" in shown.split("Stack trace")[1], "the stack trace, to its last line"
    assert f'"order_id": "{envelope.event.order_id}"' in shown, "the value, pretty-printed JSON"


async def test_dlt_show_asks_for_the_partition_when_an_offset_is_in_several(scratch_topic) -> None:
    for _ in range(12):  # 12 random keys: some two land in different partitions at offset 0
        await dead_letter(scratch_topic, payment_processed(), ReadOnlyTable("x"))

    result = await ecommerce("dlt", "show", scratch_topic, "0")

    assert result.exit_code == 1
    assert "give PARTITION:OFFSET" in result.output


async def test_a_redrive_is_a_dry_run_unless_executed_then_sends_the_event_back_and_refuses_past_the_limit(
    scratch_topic,
) -> None:
    envelope = payment_processed()
    original = await dead_letter(scratch_topic, envelope, ReadOnlyTable("cannot write orders"))
    key = str(envelope.event.order_id).encode()

    dry = await ecommerce("dlt", "redrive", "--topic", scratch_topic, "--cause", "readonlytable", "--json")

    assert dry.exit_code == 0, dry.output
    (planned,) = json.loads(dry.stdout)["redrives"]
    assert planned["event_id"] == str(envelope.event_id)
    assert (planned["to_topic"], planned["to_partition"]) == (scratch_topic, original.partition)
    assert len(await records_of(scratch_topic, key)) == 1, "a dry run sends nothing"

    done = await ecommerce(
        "dlt", "redrive", "--topic", scratch_topic, "--event-id", str(envelope.event_id), "--execute"
    )

    assert done.exit_code == 0, done.output
    assert "Sent 1" in done.stdout
    first, redriven = await records_of(scratch_topic, key)
    assert redriven.partition == original.partition
    assert (redriven.key, redriven.value) == (first.key, first.value)
    assert decode(redriven.value, redriven.headers) == envelope
    headers = dict(redriven.headers)
    assert headers[REDRIVE_COUNT] == b"1"
    assert headers[REDRIVEN_FROM] == f"{dead_letter_topic(scratch_topic)}:{original.partition}:0".encode()
    assert not [name for name in headers if name.startswith("kafka_dlt-")]
    listed = await ecommerce("dlt", "list", scratch_topic, "--sent-back", "--json")
    assert [letter["sent_back"] for letter in json.loads(listed.stdout)] == [1], "the listing tells it was redriven"

    refused = await ecommerce("dlt", "redrive", "--topic", scratch_topic, "--all", "--max-redrives", "0", "--execute")

    assert refused.exit_code == 1
    assert "REFUSED" in refused.stdout and "already redriven 0 times (limit 0)" in refused.stdout
    assert len(await records_of(scratch_topic, key)) == 2, "a refused redrive sends nothing"


async def test_the_saga_reader_finds_every_record_of_a_key_in_the_one_partition_it_computes(scratch_topic) -> None:
    envelopes = [payment_processed() for _ in range(20)]
    for envelope in envelopes:
        await dead_letter(scratch_topic, envelope, ReadOnlyTable("x"))
    wanted = envelopes[7]
    key = str(wanted.event.order_id)

    async with KafkaReader(None) as kafka:
        (tp,) = await kafka.key_partitions([scratch_topic], key)
        ranges = await ranges_since(kafka.consumer, [tp], wanted.occurred_at.replace(year=2000))
        found = await read_ranges(kafka.consumer, ranges, keep=lambda record: record.key == key.encode())

    everywhere = await records_of(scratch_topic, key.encode())
    assert [(r.partition, r.offset) for r in found] == [(r.partition, r.offset) for r in everywhere]
    assert TopicPartition(scratch_topic, everywhere[0].partition) == tp
