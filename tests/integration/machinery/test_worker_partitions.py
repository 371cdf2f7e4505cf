"""The event worker's partitions progress independently: a slow record holds its own partition and no
other, the worker stays in its group however long a handler takes, and a rebalance commits what each
partition finished (the partitions it keeps included) and stops the ones it loses after the record
in hand.

Each test has a two-partition topic of its own (the `own_topic` fixture), so it decides which records
share a partition, and a second member of the group takes exactly one of the two.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from machinery_support import KAFKA, alert, apply_effect, consumer_events, send_to_partition, unique_keys, wait_until
from shared.consumer import EventWorker
from shared.events import Envelope
from shared.kafka.security import admin_client_config

pytestmark = [pytest.mark.infra, pytest.mark.timeout(120)]


class SlowForOneKey:
    """The tests' handler: applies the effect; for `slow_key`, first waits `seconds`. Notes when each
    event was started and finished, and how often it was started."""

    def __init__(self, slow_key: str, seconds: float, fast_seconds: float = 0.0) -> None:
        self.slow_key, self.seconds, self.fast_seconds = slow_key, seconds, fast_seconds
        self.started: dict[uuid.UUID, float] = {}
        self.finished: dict[uuid.UUID, float] = {}
        self.calls: dict[uuid.UUID, int] = {}

    async def __call__(self, session, envelope: Envelope) -> None:
        self.started.setdefault(envelope.event_id, time.monotonic())
        self.calls[envelope.event_id] = self.calls.get(envelope.event_id, 0) + 1
        await asyncio.sleep(self.seconds if envelope.key == self.slow_key else self.fast_seconds)
        await apply_effect(session, envelope)
        self.finished[envelope.event_id] = time.monotonic()


@asynccontextmanager
async def a_newcomer_takes_partition_1(topic: str, group_id: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A second member joins the worker's group, and the rebalance gives it partition 1. Member ids
    start with the client id and the assignor hands partitions out in member-id order: the worker's
    client id starts with "mt_", so the newcomer ("zz-...") gets partition 1."""
    newcomer = AIOKafkaConsumer(
        topic, **admin_client_config(KAFKA), group_id=group_id, client_id="zz-newcomer", enable_auto_commit=False
    )
    await newcomer.start()
    try:
        await wait_until(newcomer.assignment, timeout=30, what="the newcomer got a partition")
        assert newcomer.assignment() == {TopicPartition(topic, 1)}
        yield newcomer
    finally:
        await newcomer.stop()


async def test_a_slow_record_on_one_partition_does_not_delay_the_records_of_another_partition(
    db, make_settings, kafka, own_topic, background
):
    slow_key, fast_key = unique_keys(2)
    slow = alert(slow_key)
    fast = [alert(fast_key, n) for n in range(5)]
    handler = SlowForOneKey(slow_key, seconds=8)
    settings = make_settings()
    await kafka.place_group(settings.group_id, {TopicPartition(own_topic, p): 0 for p in (0, 1)})
    worker = background.start(EventWorker(settings, db.sessions, {"LowStockAlert": handler}, [own_topic]).run)

    await send_to_partition(own_topic, 1, slow)
    await wait_until(lambda: slow.event_id in handler.started, timeout=30, what="the slow record is in hand")
    sent_at = time.monotonic()
    await send_to_partition(own_topic, 0, *fast)
    await wait_until(
        lambda: all(e.event_id in handler.finished for e in fast), timeout=30, what="the other partition's records"
    )
    latest = max(handler.finished[e.event_id] for e in fast) - sent_at

    assert latest < 2.0, f"the other partition waited {latest:.1f}s for the slow record"
    assert slow.event_id not in handler.finished, "the slow record is still in hand"
    worker.check()
    await worker.stopped()


async def test_a_handler_that_runs_longer_than_max_poll_interval_does_not_cost_the_worker_its_group_membership(
    db, make_settings, kafka, own_topic, background
):
    slow_key, other_key = unique_keys(2)
    slow, after = alert(slow_key), alert(other_key)
    handler = SlowForOneKey(slow_key, seconds=5)
    settings = make_settings(consumer_max_poll_interval_ms=3000, consumer_handoff_grace_s=1)
    await kafka.place_group(settings.group_id, {TopicPartition(own_topic, p): 0 for p in (0, 1)})
    worker = background.start(EventWorker(settings, db.sessions, {"LowStockAlert": handler}, [own_topic]).run)

    async def stable_with_one_member() -> bool:
        worker.check()
        return await kafka.group_members(settings.group_id) == ("Stable", 1)

    await wait_until(stable_with_one_member, timeout=30, what="the worker joined its group")
    (record,) = await send_to_partition(own_topic, 1, slow)
    await wait_until(lambda: slow.event_id in handler.started, timeout=30, what="the slow record is in hand")
    seen = []
    while slow.event_id not in handler.finished:
        seen.append(await kafka.group_members(settings.group_id))
        await asyncio.sleep(0.2)
    (after_record,) = await send_to_partition(own_topic, 0, after)
    await kafka.wait_committed_past(settings.group_id, [record, after_record], worker)

    assert set(seen) == {("Stable", 1)}, f"the group changed while the handler ran: {sorted(set(seen))}"
    assert handler.calls == {slow.event_id: 1, after.event_id: 1}
    assert consumer_events(settings.service_name, own_topic, "LowStockAlert", "duplicate") == 0
    await worker.stopped()


async def test_when_a_second_member_joins_the_partition_kept_has_its_progress_committed_and_is_not_reprocessed_and_the_partition_lost_is_not_processed_after_the_revoke(  # noqa: E501
    db, make_settings, kafka, own_topic, background
):
    kept_key, lost_key = unique_keys(2)
    kept = [alert(kept_key, n) for n in range(30)]
    slow, behind_slow = alert(lost_key, 0), [alert(lost_key, n) for n in range(1, 6)]
    # The partition kept moves at 0.1 s a record; the one lost has a 6 s record in hand at the revoke.
    # The worker hears of the rebalance at its next heartbeat (every 3 s) after the newcomer joins,
    # so the slow record must outlast that, and finish within the hand-over's grace (10 s).
    handler = SlowForOneKey(lost_key, seconds=6, fast_seconds=0.1)
    # A transaction per record: records fetched together would otherwise share the slow record's
    # transaction, and be in hand with it at the revoke.
    settings = make_settings(consumer_max_batch_size=1)
    await kafka.place_group(settings.group_id, {TopicPartition(own_topic, p): 0 for p in (0, 1)})
    worker = background.start(EventWorker(settings, db.sessions, {"LowStockAlert": handler}, [own_topic]).run)
    kept_records = await send_to_partition(own_topic, 0, *kept)
    lost_records = await send_to_partition(own_topic, 1, slow, *behind_slow)
    await wait_until(
        lambda: slow.event_id in handler.started and len(handler.finished) >= 5,
        timeout=30,
        what="the slow record is in hand and the other partition is moving",
    )

    async with a_newcomer_takes_partition_1(own_topic, settings.group_id):
        await kafka.wait_committed_past(settings.group_id, kept_records, worker)
        committed = await kafka.committed(settings.group_id)
    effects = await db.effects()

    assert {e.event_id: effects.get(e.event_id) for e in kept} == {e.event_id: 1 for e in kept}
    assert all(handler.calls[e.event_id] == 1 for e in kept), "records of the partition kept were handled again"
    assert consumer_events(settings.service_name, own_topic, "LowStockAlert", "duplicate") == 0
    assert effects.get(slow.event_id) == 1, "the record in hand at the revoke was finished"
    assert committed[TopicPartition(own_topic, 1)] == lost_records[0].offset + 1, "and its offset committed"
    started_behind = [e for e in behind_slow if e.event_id in handler.started]
    assert started_behind == [], "records of the lost partition were handled after it was revoked"
    await worker.stopped()


async def test_a_record_in_hand_that_outlives_the_hand_over_of_its_partition_is_not_committed_by_the_old_owner(
    db, make_settings, kafka, own_topic, background
):
    kept_key, lost_key = unique_keys(2)
    slow, kept = alert(lost_key), alert(kept_key)
    handler = SlowForOneKey(lost_key, seconds=5)
    settings = make_settings(consumer_handoff_grace_s=0.5)
    await kafka.place_group(settings.group_id, {TopicPartition(own_topic, p): 0 for p in (0, 1)})
    worker = background.start(EventWorker(settings, db.sessions, {"LowStockAlert": handler}, [own_topic]).run)
    (slow_record,) = await send_to_partition(own_topic, 1, slow)
    await wait_until(lambda: slow.event_id in handler.started, timeout=30, what="the slow record is in hand")

    async with a_newcomer_takes_partition_1(own_topic, settings.group_id):
        (kept_record,) = await send_to_partition(own_topic, 0, kept)
        await kafka.wait_committed_past(settings.group_id, [kept_record], worker)
        await wait_until(lambda: slow.event_id in handler.finished, timeout=30, what="the slow record finished")
        await asyncio.sleep(3 * settings.consumer_commit_interval_ms / 1000)  # commits that should not come
        committed = await kafka.committed(settings.group_id)

    assert (await db.effects()).get(slow.event_id) == 1, "its transaction went through"
    assert committed.get(TopicPartition(own_topic, 1), 0) == slow_record.offset, (
        "the old owner committed an offset of a partition it no longer owns"
    )
    await worker.stopped()
