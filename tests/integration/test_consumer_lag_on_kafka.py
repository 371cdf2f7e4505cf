"""Consumer lag measured on the real cluster (shared.kafka.lag): a scratch topic holds records with
known timestamps, a fresh group commits known offsets, and the lag comes out in records and in the
age of the oldest unconsumed record, found from offsets by timestamp alone. The monitor principal
measures the services' groups and cannot read a record."""

import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
from shared.events.topics import EVENT_TOPICS
from shared.kafka.lag import SERVICE_GROUPS, LagProbe, measure_lag
from shared.kafka.security import client_config, development_password

NOW = time.time()
NOW_MS = int(NOW * 1000)


async def produce(admin_kafka, topic: str, stamps: dict[int, list[int]]) -> None:
    """Each partition's records, stamped as given (CreateTime), acknowledged by every replica."""
    producer = AIOKafkaProducer(**admin_kafka, acks="all")
    await producer.start()
    try:
        for partition, timestamps in stamps.items():
            for i, stamp in enumerate(timestamps):
                await producer.send_and_wait(topic, f"record {i}".encode(), partition=partition, timestamp_ms=stamp)
    finally:
        await producer.stop()


async def commit(admin_kafka, group: str, offsets: dict[TopicPartition, int]) -> None:
    """The group commits these offsets, as a worker does after its transaction (without joining)."""
    consumer = AIOKafkaConsumer(**admin_kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


def as_monitor(bootstrap_servers: str) -> dict:
    return client_config(bootstrap_servers, "monitor", development_password("monitor"))


async def test_lag_is_the_records_after_the_committed_offset_and_the_age_of_the_first_of_them(
    admin_kafka, scratch_topics
):
    topic = await scratch_topics(partitions=3)
    group = f"lag-test-{uuid.uuid4()}"
    behind = [NOW_MS - (60 - i) * 1000 for i in range(10)]  # one a second, a minute ago
    caught_up = [NOW_MS - 30_000, NOW_MS - 20_000]
    never_committed = [NOW_MS - 90_000, NOW_MS - 80_000, NOW_MS - 70_000]
    await produce(admin_kafka, topic, {0: behind, 1: caught_up, 2: never_committed})
    await commit(admin_kafka, group, {TopicPartition(topic, 0): 4, TopicPartition(topic, 1): 2})

    lags = await measure_lag(admin_kafka, [group], now=lambda: NOW)

    assert [(lag.partition, lag.committed, lag.end, lag.records) for lag in lags] == [
        (0, 4, 10, 6),
        (1, 2, 2, 0),
        (2, None, 3, 3),  # nothing committed: it would start at the log start
    ]
    assert [lag.seconds for lag in lags] == [
        pytest.approx(NOW - behind[4] / 1000, abs=0.001),  # the first record not consumed: 56 s
        0.0,
        pytest.approx(NOW - never_committed[0] / 1000, abs=0.001),
    ]
    assert {lag.group for lag in lags} == {group}
    assert {lag.topic for lag in lags} == {topic}


async def test_a_probe_measures_again_and_again_as_the_group_catches_up(admin_kafka, scratch_topics):
    topic = await scratch_topics(partitions=1)
    group = f"lag-test-{uuid.uuid4()}"
    stamps = [NOW_MS - 10_000, NOW_MS - 5_000]
    await produce(admin_kafka, topic, {0: stamps})
    partition = TopicPartition(topic, 0)

    async with LagProbe(admin_kafka, now=lambda: NOW) as probe:
        await commit(admin_kafka, group, {partition: 1})
        first = await probe.measure([group])
        await commit(admin_kafka, group, {partition: 2})
        second = await probe.measure([group])
        ends = await probe.end_offsets([topic])

    assert [(lag.records, round(lag.seconds, 3)) for lag in first] == [(1, round(NOW - stamps[1] / 1000, 3))]
    assert [(lag.records, lag.seconds) for lag in second] == [(0, 0.0)]
    assert ends == {partition: 2}


async def test_the_monitor_principal_measures_lag_but_may_not_read_a_record(bootstrap_servers):
    monitor = as_monitor(bootstrap_servers)

    lags = await measure_lag(monitor)

    assert {(lag.group, lag.topic) for lag in lags} == {
        (group, topic) for group, topics in SERVICE_GROUPS.items() for topic in topics
    }
    consumer = AIOKafkaConsumer(**monitor, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(EVENT_TOPICS[0], 0)
        consumer.assign([partition])
        consumer.seek(partition, 0)
        with pytest.raises(TopicAuthorizationFailedError):
            await consumer.getmany(partition, timeout_ms=5_000)
    finally:
        await consumer.stop()


async def test_the_monitor_principal_may_not_see_a_group_that_is_not_a_services(admin_kafka, bootstrap_servers):
    group = f"lag-test-{uuid.uuid4()}"

    with pytest.raises(GroupAuthorizationFailedError):
        await measure_lag(as_monitor(bootstrap_servers), [group])
