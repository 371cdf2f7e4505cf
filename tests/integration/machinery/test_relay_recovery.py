"""The relay after its producer failed a batch: on a disposable two-node KRaft cluster
(disposable_kafka.py), never the shared one, because the test freezes a broker.

The failure: the only replica of the topic's partition is on node 2; node 2 is frozen (SIGSTOP), the
controller fences it and the partition has no leader. Batches the relay sends meanwhile expire in
the producer (after `request_timeout_ms`) without reaching any broker, but aiokafka's idempotent
producer has already given their records sequence numbers. Once node 2 is back, that producer's
next batch starts past a gap the broker never saw: OutOfOrderSequenceNumber, for every batch after it.
A relay that kept that producer never published again; it must replace it.
"""

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from disposable_kafka import DisposableKafka
from machinery_support import alert, event_id_of, unique, unique_keys, wait_until
from shared.events import Envelope
from shared.outbox import add_to_outbox
from shared.outbox.relay import OutboxRelay
from sqlalchemy import text

pytestmark = [pytest.mark.infra, pytest.mark.timeout(120)]

REQUEST_TIMEOUT_MS = 2000  # the producer's request timeout, also how long a batch may wait for a leader


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DisposableKafka]:
    """Started once per module: two JVMs take 20-40 s to start on a busy machine."""
    started = DisposableKafka(tmp_path_factory.mktemp("kafka"))
    try:
        await asyncio.to_thread(started.start)
        await started.wait_ready()
        yield started
    finally:
        await asyncio.to_thread(started.stop)


async def write_to(db, topic: str, events: list[Envelope]) -> None:
    """Outbox rows exactly as the writer makes them, addressed to the disposable cluster's topic."""
    async with db.sessions() as session, session.begin():
        await add_to_outbox(session, *events)
        await session.execute(text("UPDATE outbox SET topic = :topic WHERE published_at IS NULL"), {"topic": topic})


async def read_all(cluster: DisposableKafka, topic: str, expected: int) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=cluster.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list = []
    try:
        deadline = time.monotonic() + 20
        while len({event_id_of(r) for r in records}) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_after_its_batches_expired_on_a_leaderless_partition_the_relay_publishes_every_row_in_order_once_the_leader_is_back(  # noqa: E501
    db, make_settings, background, cluster
):
    topic = unique("relay-recovery")
    (sku,) = unique_keys(1)
    await cluster.create_topic(topic, replica_on=2)
    await wait_until(lambda: _is(cluster.leader_of(topic), 2), timeout=20, what="node 2 leads the partition")
    settings = make_settings(
        kafka_bootstrap_servers=cluster.bootstrap,
        kafka_security_protocol="PLAINTEXT",  # the disposable cluster is private to this test
        producer_request_timeout_ms=REQUEST_TIMEOUT_MS,
        relay_batch_size=10,  # several relay batches, two of them in flight
    )
    relay = OutboxRelay(settings, db.dsn)
    running = background.start(relay.run)

    # The producer has written to the partition: the broker now tracks its sequence numbers there.
    await write_to(db, topic, [alert(sku, n) for n in range(1, 11)])

    async def published() -> bool:
        running.check()
        return await db.unpublished() == 0

    await wait_until(published, timeout=30, what="the first rows are published")

    cluster.node(2).pause()
    try:
        await wait_until(
            lambda: _is(cluster.leader_of(topic), -1), timeout=20, what="the partition has no leader", interval=0.2
        )
        await write_to(db, topic, [alert(sku, n) for n in range(11, 41)])
        # Leaderless for three request timeouts: every batch the relay sends meanwhile expires.
        held_until = time.monotonic() + 3 * REQUEST_TIMEOUT_MS / 1000
        while time.monotonic() < held_until:
            running.check()
            assert await db.unpublished() == 30, "rows were marked published while no broker could have them"
            await asyncio.sleep(0.2)
    finally:
        cluster.node(2).resume()
    await wait_until(lambda: _is(cluster.leader_of(topic), 2), timeout=20, what="node 2 leads again", interval=0.2)

    await wait_until(published, timeout=20, what="every row is published after the leader came back")
    producers = relay.producers_started
    await write_to(db, topic, [alert(sku, 41)])
    await wait_until(published, timeout=10, what="a row written afterwards is published too")
    await running.stopped()

    assert producers >= 2, "the failed producer was never replaced"
    assert relay.producers_started == producers, "the relay still replaced producers after it recovered"

    records = await read_all(cluster, topic, expected=41)
    first_occurrences, seen = [], set()
    for record in records:
        if event_id_of(record) not in seen:
            seen.add(event_id_of(record))
            first_occurrences.append(orjson.loads(record.value)["available"])
    assert first_occurrences == list(range(1, 42)), "the key's events are not on the topic in outbox order"
    print(f"{len(records)} records for 41 events; {producers} producers")


async def _is(awaitable, expected) -> bool:
    return await awaitable == expected
