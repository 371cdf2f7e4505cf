"""Reading Kafka as the operator: the admin principal's client settings (shared.kafka.security), no
consumer group (nothing is committed, no service's group is touched), and always a bounded range:
from a start offset up to the end offsets taken when the command started, so a command ends even
while the services keep writing."""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from shared.kafka.security import admin_client_config

from .partitioning import partition_for

Progress = Callable[[int], None]  # called with the number of records just read
Keep = Callable[[ConsumerRecord], bool]
C = TypeVar("C", bound=Any)


class KafkaReader:
    """A consumer without a group, and an admin client for the topics' metadata, as the admin
    principal; `async with KafkaReader(bootstrap) as kafka:` starts and stops both."""

    def __init__(self, bootstrap_servers: str | None) -> None:
        config = admin_client_config(bootstrap_servers)
        self.consumer = AIOKafkaConsumer(
            **config, enable_auto_commit=False, client_id="ecommerce-ops", max_partition_fetch_bytes=4 * 1024 * 1024
        )
        self.admin = AIOKafkaAdminClient(**config, client_id="ecommerce-ops")

    async def __aenter__(self) -> "KafkaReader":
        try:
            await self.admin.start()
            await self.consumer.start()
            # Let the consumer's background tasks start: stopped before they ever ran, aiokafka's
            # group-less coordinator raises CancelledError from its close().
            await asyncio.sleep(0)
        except BaseException:
            # Both closed, started or not: an unclosed client complains when it is collected.
            with suppress(Exception):
                await self.consumer.stop()
            with suppress(Exception):
                await self.admin.close()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        try:
            await self.consumer.stop()
        finally:
            await self.admin.close()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions (an unknown topic raises LookupError)."""
        (described,) = await self.admin.describe_topics([topic])
        if described["error_code"] != 0 or not described["partitions"]:
            raise LookupError(f"no topic {topic!r} in the cluster (error code {described['error_code']})")
        return [
            TopicPartition(topic, p["partition"]) for p in sorted(described["partitions"], key=lambda p: p["partition"])
        ]

    async def key_partitions(self, topics: Sequence[str], key: str) -> list[TopicPartition]:
        """The partition of each topic that holds the records keyed `key`."""
        return [TopicPartition(topic, partition_for(key, len(await self.partitions(topic)))) for topic in topics]


def writer(bootstrap_servers: str | None) -> AIOKafkaProducer:
    """As durable as the relays' producers: every replica in sync acknowledges, no duplicates on retry."""
    return AIOKafkaProducer(
        **admin_client_config(bootstrap_servers), client_id="ecommerce-ops", acks="all", enable_idempotence=True
    )


async def ranges_since(
    consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition], since: datetime
) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition, [the first offset written at or after `since`, the end offset now); partitions
    with nothing written since are left out."""
    tps = list(tps)
    end = await consumer.end_offsets(tps)
    found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
    return {tp: (at.offset, end[tp]) for tp, at in found.items() if at is not None and at.offset < end[tp]}


async def whole_ranges(
    consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition]
) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition, [its first offset still kept, its end offset now); empty partitions left out."""
    tps = list(tps)
    start = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    return {tp: (start[tp], end[tp]) for tp in tps if start[tp] < end[tp]}


async def read_ranges(
    consumer: AIOKafkaConsumer,
    ranges: dict[TopicPartition, tuple[int, int]],
    *,
    keep: Keep = lambda _record: True,
    progress: Progress = lambda _count: None,
    timeout_s: float = 120.0,
) -> list[ConsumerRecord]:
    """The records of each partition from its start offset up to (not including) its end offset
    that `keep` keeps, in partition order."""
    if not ranges:
        return []
    consumer.assign(list(ranges))
    for tp, (start, _end) in ranges.items():
        consumer.seek(tp, start)
    remaining = set(ranges)
    kept: list[ConsumerRecord] = []
    async with asyncio.timeout(timeout_s):
        while remaining:
            fetched: dict[TopicPartition, list[ConsumerRecord]] = await consumer.getmany(
                *remaining, timeout_ms=500, max_records=5000
            )
            for tp, records in fetched.items():
                end = ranges[tp][1]
                inside = [record for record in records if record.offset < end]
                kept.extend(record for record in inside if keep(record))
                progress(len(inside))
            for tp in list(remaining):
                # By position, not by the last record seen: a gap (a record removed by retention or
                # compaction) would otherwise be waited for in vain.
                if await consumer.position(tp) >= ranges[tp][1]:
                    remaining.discard(tp)
                    consumer.pause(tp)  # read no further than the end taken at the start
    return kept


@asynccontextmanager
async def started(client: C) -> AsyncIterator[C]:
    """A Kafka client started for the block, and stopped whatever happens in it."""
    await client.start()
    try:
        yield client
    finally:
        await client.stop()
