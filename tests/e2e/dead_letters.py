"""What the dead-letter topics received during a test: their end offsets before and after, and the
keys of the records in between. Saga records are keyed by order id (LowStockAlert by SKU), and a
dead letter keeps its original key, so the keys say whether a test's own events were dead-lettered."""

import asyncio
import os

from aiokafka import AIOKafkaConsumer, TopicPartition
from shared.events.topics import EVENT_TOPICS, PARTITIONS, dead_letter_topic
from shared.kafka.security import admin_client_config

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096")
DEAD_LETTER_PARTITIONS = [
    TopicPartition(dead_letter_topic(topic), partition) for topic in EVENT_TOPICS for partition in range(PARTITIONS)
]


def reader() -> AIOKafkaConsumer:
    return AIOKafkaConsumer(**admin_client_config(BOOTSTRAP), enable_auto_commit=False, client_id="e2e-dead-letters")


async def end_offsets() -> dict[TopicPartition, int]:
    consumer = reader()
    await consumer.start()
    try:
        return await consumer.end_offsets(DEAD_LETTER_PARTITIONS)
    finally:
        await consumer.stop()


def per_topic(offsets: dict[TopicPartition, int]) -> dict[str, int]:
    totals = {dead_letter_topic(topic): 0 for topic in EVENT_TOPICS}
    for tp, offset in offsets.items():
        totals[tp.topic] += offset
    return totals


async def keys_since(start: dict[TopicPartition, int], *, timeout: float = 30) -> list[str]:
    """The keys of every dead letter written after `start`, up to the end offsets of now."""
    consumer = reader()
    await consumer.start()
    keys: list[str] = []
    try:
        end = await consumer.end_offsets(list(start))
        remaining = {tp for tp in start if end[tp] > start[tp]}
        if not remaining:
            return keys
        consumer.assign(list(remaining))
        for tp in remaining:
            consumer.seek(tp, start[tp])
        async with asyncio.timeout(timeout):
            while remaining:
                for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                    keys.extend(
                        (record.key or b"").decode(errors="replace") for record in records if record.offset < end[tp]
                    )
                    if records and records[-1].offset + 1 >= end[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return keys
