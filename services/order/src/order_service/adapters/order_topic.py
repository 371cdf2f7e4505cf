"""Reads the `order-events` topic from its beginning to its current end, without a consumer group:
partitions are assigned by hand and no offset is committed, so reading changes nothing."""

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from shared.events.topics import ORDER_EVENTS

STALL_TIMEOUT_S = 60.0


async def read_to_end(
    kafka: Mapping[str, Any], topic: str = ORDER_EVENTS, stall_timeout_s: float = STALL_TIMEOUT_S
) -> AsyncIterator[ConsumerRecord]:
    """Every record from each partition's first retained offset to its end offset as of the start
    of the call, in offset order per partition. Raises TimeoutError if no progress is made for
    `stall_timeout_s`. `kafka`: the client settings (Settings.kafka_client_config(), order's principal
    may read order-events)."""
    consumer = AIOKafkaConsumer(
        **kafka,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="order-rebuild",
    )
    await consumer.start()
    try:
        partitions = await _partitions(kafka, topic)
        consumer.assign(partitions)
        first = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if end[tp] > first[tp]}
        last_progress = time.monotonic()
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < end[tp]:
                        yield record
            if batches:
                last_progress = time.monotonic()
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if time.monotonic() - last_progress > stall_timeout_s:
                raise TimeoutError(f"no progress reading {topic} for {stall_timeout_s:.0f}s; {len(remaining)} left")
    finally:
        await consumer.stop()


async def _partitions(kafka: Mapping[str, Any], topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(**kafka, client_id="order-rebuild")
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0 or not described["partitions"]:
        raise LookupError(f"topic {topic} cannot be read (error code {described['error_code']})")
    return [
        TopicPartition(topic, p["partition"]) for p in sorted(described["partitions"], key=lambda p: p["partition"])
    ]
