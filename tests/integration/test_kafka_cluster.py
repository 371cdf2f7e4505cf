"""The local three-broker cluster keeps acknowledged records through the loss of a partition leader.

The failover test SIGKILLs one broker's JVM (as a crash would) and relies on the repo's supervisord
to restart it; it returns only once that broker is back in the ISR of every partition, so the tests
after it find a healthy cluster.
"""

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from shared.kafka.security import admin_client_config

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]
SUPERVISORCTL = [str(REPO / ".venv/bin/supervisorctl"), "-c", str(REPO / "infra/supervisord.conf")]
DURABLE_TOPIC = {"min.insync.replicas": "2"}

ROUND_SIZE = 100
ROUNDS_BEFORE_KILL = 5
ROUNDS_AFTER_KILL = 10


def durable_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    # With idempotence aiokafka retries a batch until it succeeds (it never expires it), and the
    # sequence numbers let the new leader drop a batch the old one had already written.
    return AIOKafkaProducer(
        **admin_client_config(bootstrap_servers),
        acks="all",
        enable_idempotence=True,
        retry_backoff_ms=200,
        request_timeout_ms=30_000,
        client_id="it-failover-producer",
    )


async def reader(bootstrap_servers: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        **admin_client_config(bootstrap_servers),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="it-failover-consumer",
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0)])
    await consumer.seek_to_beginning(TopicPartition(topic, 0))
    return consumer


async def partition_state(admin: AIOKafkaAdminClient, topic: str, partition: int = 0) -> dict:
    """The partition as the cluster describes it. The admin asks any broker, and a broker learns of
    a new topic a moment after the others: until then it describes it with no partitions."""
    deadline = time.monotonic() + 10
    while True:
        (described,) = await admin.describe_topics([topic])
        found = [p for p in described["partitions"] if p["partition"] == partition]
        if found or time.monotonic() > deadline:
            assert found, f"{topic}-{partition} is not described: {described}"
            return found[0]
        await asyncio.sleep(0.1)


def supervisord_runs_the_brokers() -> bool:
    if not (REPO / ".run/supervisor.sock").exists():
        return False
    result = subprocess.run(
        [*SUPERVISORCTL, "pid"], env={**os.environ, "REPO": str(REPO)}, capture_output=True, text=True
    )
    return result.returncode == 0 and result.stdout.strip().isdigit()


def broker_process(node_id: int) -> tuple[int, list[str]]:
    """The pid supervisord holds for program kafka:kafka-N, and that process's argv ((0, []) if none)."""
    result = subprocess.run(
        [*SUPERVISORCTL, "pid", f"kafka:kafka-{node_id}"],
        env={**os.environ, "REPO": str(REPO)},
        capture_output=True,
        text=True,
    )
    pid = int(result.stdout.strip()) if result.stdout.strip().isdigit() else 0
    try:
        return pid, Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0") if pid else []
    except FileNotFoundError:
        return 0, []


def runs_broker_jvm(argv: list[str], node_id: int) -> bool:
    """kafka.sh `exec`s java, so once started the program's pid is the JVM itself, not a shell around
    it (before the exec it is still `bash kafka.sh broker N`)."""
    if not argv or Path(argv[0]).name != "java" or "kafka.Kafka" not in argv:
        return False
    config = Path(argv[argv.index("kafka.Kafka") + 1])
    return config.parent.name == f"broker-{node_id}" and f"node.id={node_id}" in config.read_text().split()


async def test_a_record_produced_with_acks_all_to_a_replicated_topic_is_consumed(
    healthy_cluster, scratch_topics, bootstrap_servers
):
    topic = await scratch_topics(partitions=3, replication_factor=3, config=DURABLE_TOPIC)
    producer = durable_producer(bootstrap_servers)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, key=b"order-42", value=b"hello")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        **admin_client_config(bootstrap_servers), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, sent.partition)])
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()

    assert (record.key, record.value, record.offset) == (b"order-42", b"hello", sent.offset)
    state = await partition_state(healthy_cluster, topic, sent.partition)
    assert sorted(state["isr"]) == [1, 2, 3]


@dataclass
class Stream:
    """What the producer sent and got acknowledged, and what the consumer read, by record value."""

    sent: int = 0
    acked: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    consumed: list[int] = field(default_factory=list)
    sent_before_kill: int = 0


async def produce_round(producer: AIOKafkaProducer, topic: str, stream: Stream) -> list[asyncio.Future]:
    """Hand ROUND_SIZE records to the producer without awaiting their acks."""
    futures = []
    for _ in range(ROUND_SIZE):
        futures.append(await producer.send(topic, value=str(stream.sent).encode(), partition=0))
        stream.sent += 1
    return futures


async def await_acks(futures: list[asyncio.Future], first_value: int, stream: Stream) -> None:
    async with asyncio.timeout(120):
        results = await asyncio.gather(*futures, return_exceptions=True)
    for value, result in enumerate(results, start=first_value):
        if isinstance(result, BaseException):
            stream.failed[value] = repr(result)
        else:
            stream.acked.append(value)


async def consume_into(consumer: AIOKafkaConsumer, stream: Stream) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=200)
        for records in batches.values():
            stream.consumed.extend(int(r.value) for r in records)


async def test_acknowledged_records_survive_a_sigkilled_partition_leader_and_the_broker_rejoins(
    healthy_cluster, scratch_topics, bootstrap_servers, eventually, fully_replicated, kafka_unavailable
):
    if not supervisord_runs_the_brokers():
        pytest.skip("the brokers are not run by this repo's supervisord (make up-infra)")
    admin = healthy_cluster
    topic = await scratch_topics(partitions=1, replication_factor=3, config=DURABLE_TOPIC)
    before = await partition_state(admin, topic)
    assert sorted(before["isr"]) == [1, 2, 3]
    victim = before["leader"]
    victim_pid, argv = await asyncio.to_thread(broker_process, victim)
    assert runs_broker_jvm(argv, victim), f"pid {victim_pid} of kafka:kafka-{victim} is no broker JVM: {argv}"

    async def restarted() -> bool:
        pid, argv = await asyncio.to_thread(broker_process, victim)
        return pid != victim_pid and runs_broker_jvm(argv, victim)

    async def led_by_a_survivor() -> bool:
        return (await partition_state(admin, topic))["leader"] not in (victim, -1)

    async def every_acked_record_consumed() -> bool:
        return set(stream.acked) <= set(stream.consumed)

    stream = Stream()
    consumer = await reader(bootstrap_servers, topic)
    consuming = asyncio.create_task(consume_into(consumer, stream))
    producer = durable_producer(bootstrap_servers)
    await producer.start()
    killed = False
    try:
        for _ in range(ROUNDS_BEFORE_KILL):
            first = stream.sent
            await await_acks(await produce_round(producer, topic, stream), first, stream)

        # Mid-stream: a round is handed to the producer, and the leader dies before it is acknowledged.
        first = stream.sent
        in_flight = await produce_round(producer, topic, stream)
        stream.sent_before_kill = stream.sent
        unacked_at_kill = sum(not future.done() for future in in_flight)
        os.kill(victim_pid, signal.SIGKILL)
        killed = True
        await await_acks(in_flight, first, stream)
        # Those acks came from a new leader; the broker the admin asks may learn of it a moment later.
        await eventually(
            led_by_a_survivor,
            timeout=30,
            what=f"a broker other than {victim} leads {topic}-0",
            tolerate=kafka_unavailable,
        )

        for _ in range(ROUNDS_AFTER_KILL):
            first = stream.sent
            await await_acks(await produce_round(producer, topic, stream), first, stream)
        await eventually(every_acked_record_consumed, timeout=60, what="every acknowledged record consumed")
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
        # Whatever happened above, the killed broker must be back in every ISR before the next test.
        if killed:
            await eventually(restarted, timeout=90, interval=1, what=f"supervisord restarted broker {victim}")
        await fully_replicated(admin, timeout=180)

    assert unacked_at_kill > 0, "records were in flight when the leader died"
    assert stream.failed == {}, "an idempotent producer with retries gets every record acknowledged"
    assert len(stream.acked) == stream.sent == (ROUNDS_BEFORE_KILL + 1 + ROUNDS_AFTER_KILL) * ROUND_SIZE
    assert sorted(set(stream.consumed)) == stream.acked, "every acked record consumed, nothing else"
    assert len(stream.consumed) == len(set(stream.consumed)), "no record was written twice"
    assert stream.consumed == sorted(stream.consumed), "the partition kept the order of the sends"
    assert max(stream.consumed) == stream.sent - 1 > stream.sent_before_kill, "production went on after the kill"
    assert victim in (await partition_state(admin, topic))["isr"], "the restarted broker is in sync again"
