"""The outbox relay against the real Postgres and Kafka: what is published, what is not, and what
survives a relay killed with SIGKILL (docs/architecture.md, "Publishing: the relay").

The events are LowStockAlerts on inventory-events, keyed by a SKU unique to the test run: the topic
is shared, so each test reads back only its own keys, from the offsets it noted before it wrote.
"""

import asyncio
import random
import signal
import time
from collections import Counter

import asyncpg
import orjson
import pytest
from machinery_support import (
    alert,
    apply_effect,
    by_event_id,
    by_key,
    consumer_events,
    event_id_of,
    unique_keys,
    wait_until,
)
from prometheus_client import REGISTRY
from shared.consumer import EventWorker
from shared.events.topics import INVENTORY_EVENTS
from shared.outbox import add_to_outbox
from shared.outbox.relay import OutboxRelay, advisory_lock_key
from sqlalchemy import text

pytestmark = [pytest.mark.infra, pytest.mark.timeout(120)]


class Rollback(Exception):
    pass


async def test_outbox_rows_written_in_a_rolled_back_transaction_are_never_published(
    db, make_settings, kafka, background
):
    (sku,) = unique_keys(1)
    start = await kafka.end_offsets(INVENTORY_EVENTS)
    rolled_back = [alert(sku, n) for n in range(1, 4)]
    with pytest.raises(Rollback):
        async with db.sessions() as session, session.begin():
            await add_to_outbox(session, *rolled_back)
            raise Rollback
    # Committed after the rolled-back rows, on the same key: had those been published, they would
    # sit before this one in the same partition.
    committed = alert(sku, 4)
    await db.write_events(committed)

    relay = OutboxRelay(make_settings(), db.dsn)
    running = background.start(relay.run)

    async def published() -> bool:
        running.check()
        return await db.unpublished() == 0 and relay.published == 1

    await wait_until(published, timeout=30, what="the committed row is published")
    records = await kafka.read_to_end(start, keep=lambda r: r.key == sku.encode())

    assert [event_id_of(r) for r in records] == [committed.event_id]
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1
    await running.stopped()
    assert relay.published == 1


async def test_a_relay_killed_between_the_brokers_ack_and_the_mark_resends_the_batch_with_the_same_event_ids_and_a_consumer_applies_each_effect_once(  # noqa: E501
    db, make_settings, kafka, spawn, background
):
    skus = unique_keys(5)
    ours = {sku.encode() for sku in skus}
    events = [alert(sku, n) for sku in skus for n in range(1, 5)]
    event_ids = {e.event_id for e in events}
    start = await kafka.end_offsets(INVENTORY_EVENTS)
    await db.write_events(*events)

    crashing = await spawn("relay_process.py", make_settings(), "--crash-before-mark")

    assert await crashing.exited(timeout=30) == -signal.SIGKILL, crashing.log()
    assert crashing.status.get("dying_with_unmarked") == len(events)
    assert await db.unpublished() == len(events), "the batch was marked although the relay died before the mark"
    sent_once = await kafka.read_to_end(start, keep=lambda r: r.key in ours)
    assert Counter(event_id_of(r) for r in sent_once) == dict.fromkeys(event_ids, 1), "the broker had every record"

    relay = OutboxRelay(make_settings(), db.dsn)
    running = background.start(relay.run)

    async def published() -> bool:
        running.check()
        return await db.unpublished() == 0

    await wait_until(published, timeout=30, what="the restarted relay published the batch")
    await running.stopped()
    records = await kafka.read_to_end(start, keep=lambda r: r.key in ours)

    assert relay.published == len(events)
    assert Counter(event_id_of(r) for r in records) == dict.fromkeys(event_ids, 2)
    for copies in by_event_id(records).values():
        first, again = copies
        assert (again.key, again.value, again.headers) == (first.key, first.value, first.headers)
        assert again.partition == first.partition

    # A consumer from before the first send applies every effect once and drops the second copies.
    settings = make_settings()
    await kafka.place_group(settings.group_id, start)
    worker = background.start(
        EventWorker(settings, db.sessions, {"LowStockAlert": apply_effect}, [INVENTORY_EVENTS]).run
    )
    await kafka.wait_committed_past(settings.group_id, records, worker)
    effects = await db.effects()

    assert {event_id: effects.get(event_id) for event_id in event_ids} == dict.fromkeys(event_ids, 1)
    assert consumer_events(settings.service_name, INVENTORY_EVENTS, "LowStockAlert", "duplicate") == len(events)
    await worker.stopped()


KEYS = 50
WRITERS = 20
EVENTS = 1000


async def test_of_two_relays_of_one_service_only_one_publishes_the_other_takes_over_within_seconds_when_it_is_killed_and_every_keys_events_arrive_in_commit_order(  # noqa: E501
    db, make_settings, kafka, spawn
):
    skus = unique_keys(KEYS)
    ours = {sku.encode() for sku in skus}
    async with db.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO aggregates (key, seq) SELECT unnest(CAST(:keys AS text[])), 0"), {"keys": skus}
        )
    start = await kafka.end_offsets(INVENTORY_EVENTS)
    settings = make_settings()  # one service: both relays compete for its advisory lock
    relay_sessions = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{settings.service_name}-relay'"

    first = await spawn("relay_process.py", settings)
    await wait_until(lambda: first.status.get("leader") == 1, timeout=30, what="the first relay leads")
    second = await spawn("relay_process.py", settings)
    await wait_until(
        lambda: second.status.get("leader") == 0,
        timeout=30,
        what="the second relay runs as a standby",
    )
    await wait_until(
        lambda: _is(db.fetchval(relay_sessions), 2), timeout=30, what="both relays are connected to Postgres"
    )
    assert await _advisory_lock_holders(db) == 1

    async def write(writer: int) -> None:
        rng = random.Random(writer)
        for _ in range(EVENTS // WRITERS):
            sku = rng.choice(skus)
            async with db.sessions() as session, session.begin():
                # Lock the aggregate first: its outbox rows are then numbered in commit order.
                bumped = await session.execute(
                    text("UPDATE aggregates SET seq = seq + 1 WHERE key = :key RETURNING seq"), {"key": sku}
                )
                seq = bumped.scalar_one()
                await add_to_outbox(session, alert(sku, seq))

    writers = asyncio.gather(*(write(n) for n in range(WRITERS)))
    try:
        await wait_until(lambda: first.status.get("published", 0) >= 200, timeout=30, what="the leader published 200")
        assert second.status == {"pid": second.pid, "leader": 0, "published": 0}, "the standby published"
        first.kill(signal.SIGKILL)
        killed_at = time.monotonic()
        assert await first.exited(timeout=10) == -signal.SIGKILL
        await wait_until(lambda: second.status.get("leader") == 1, timeout=15, what="the standby took over")
        takeover_s = time.monotonic() - killed_at
    finally:
        await writers
    assert await _advisory_lock_holders(db) == 1

    await wait_until(lambda: _is(db.unpublished(), 0), timeout=60, what="the new leader published the rest")
    records = await kafka.read(
        start,
        until=lambda kept: len({event_id_of(r) for r in kept}) >= EVENTS,
        keep=lambda r: r.key in ours,
        timeout=60,
        what=f"all {EVENTS} events are on the topic",
    )
    final_seq = dict(await db.fetch("SELECT key, seq FROM aggregates"))

    assert takeover_s < 5, f"the standby took {takeover_s:.1f}s to take over"
    assert second.status["published"] > 0
    assert sum(final_seq.values()) == EVENTS
    for sku, key_records in by_key(records).items():
        seen, first_occurrences = set(), []
        for record in key_records:
            if event_id_of(record) not in seen:
                seen.add(event_id_of(record))
                first_occurrences.append(orjson.loads(record.value)["available"])
        assert first_occurrences == list(range(1, final_seq[sku] + 1)), f"{sku} arrived out of commit order"
    print(
        f"takeover {takeover_s:.2f}s; published by the killed leader ~{first.status['published']}, "
        f"by the standby {second.status['published']}; {len(records)} records for {EVENTS} events"
    )


async def _advisory_lock_holders(db) -> int:
    key = advisory_lock_key(db.schema)
    return await db.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid::text::bigint = :key",
        key=key,
    )


async def _is(awaitable, expected) -> bool:
    return await awaitable == expected


async def test_an_idle_relay_is_woken_by_the_commit_notification_not_by_its_polling_fallback(
    db, make_settings, kafka, background
):
    (sku,) = unique_keys(1)
    settings = make_settings(relay_poll_interval_s=60)
    relay = OutboxRelay(settings, db.dsn)
    running = background.start(relay.run)
    await wait_until(lambda: _leads(settings.service_name), timeout=30, what="the relay leads")
    await asyncio.sleep(0.5)  # it has found nothing and now waits (up to 60 s) for a notification

    started = time.monotonic()
    await db.write_events(alert(sku, 1))

    async def published() -> bool:
        running.check()
        return relay.published == 1

    await wait_until(published, timeout=10, what="the row is published after its commit")
    assert time.monotonic() - started < 5, "published by the 60 s poll, not by LISTEN/NOTIFY"
    await running.stopped()


async def test_published_rows_are_purged_after_their_retention_and_unpublished_ones_are_kept(
    db, make_settings, kafka, background
):
    (sku,) = unique_keys(1)
    await db.write_events(*(alert(sku, n) for n in range(1, 6)))
    relay = OutboxRelay(make_settings(relay_published_retention_s=0.5, relay_purge_interval_s=0.2), db.dsn)
    running = background.start(relay.run)

    async def purged() -> bool:
        running.check()
        return relay.published == 5 and await db.fetchval("SELECT count(*) FROM outbox") == 0

    await wait_until(purged, timeout=30, what="published rows purged after 0.5 s")
    await running.stopped()

    # With no relay running, a new row stays unpublished: the purge must leave it alone.
    await db.write_events(alert(sku, 6))
    conn = await asyncpg.connect(db.dsn, server_settings={"search_path": db.schema})
    try:
        await OutboxRelay(make_settings(relay_published_retention_s=0), db.dsn).purge(conn)
    finally:
        await conn.close()
    assert await db.unpublished() == 1


async def test_a_relay_whose_postgres_session_is_terminated_publishes_nothing_until_it_holds_the_lock_again(
    db, make_settings, kafka, background
):
    (sku,) = unique_keys(1)
    settings = make_settings()
    relay = OutboxRelay(settings, db.dsn)
    running = background.start(relay.run)
    await wait_until(lambda: _leads(settings.service_name), timeout=30, what="the relay leads")
    start = await kafka.end_offsets(INVENTORY_EVENTS)

    # The session ends, so does its advisory lock, and another relay takes the lock at once: here the
    # test's own connection plays that relay.
    other = await asyncpg.connect(db.dsn, server_settings={"statement_timeout": "10s"})
    try:
        terminated = await other.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            f"{settings.service_name}-relay",
        )
        assert terminated == 1
        await other.execute("SELECT pg_advisory_lock($1)", advisory_lock_key(db.schema))
        await db.write_events(*(alert(sku, n) for n in range(1, 6)))
        await wait_until(
            lambda: not _leads(settings.service_name), timeout=10, what="the relay noticed it lost its session"
        )
        # Two seconds of lock retries (every 0.2 s) and polls (every 0.5 s): none may publish.
        watch_until = time.monotonic() + 2
        while time.monotonic() < watch_until:
            running.check()
            assert await db.unpublished() == 5 and relay.published == 0, "published without the lock"
            await asyncio.sleep(0.1)
    finally:
        await other.close()  # the other relay is gone: its lock with it

    async def published() -> bool:
        running.check()
        return await db.unpublished() == 0

    await wait_until(published, timeout=15, what="the relay took the lock again and published")
    assert _leads(settings.service_name)
    await running.stopped()
    records = await kafka.read_to_end(start, keep=lambda r: r.key == sku.encode())
    assert [orjson.loads(r.value)["available"] for r in records] == [1, 2, 3, 4, 5]


PURGE_BACKLOG = 60_000  # published rows past their retention: six times the purge chunk


async def test_a_relay_purges_a_backlog_of_published_rows_far_larger_than_one_purge_chunk_within_seconds_and_keeps_the_recent_ones(  # noqa: E501
    db, make_settings, kafka, background
):
    """The outbox must shrink as fast as the relay can fill it. A relay deleting one chunk per purge
    interval (10,000 rows a minute, ~167 rows/s) falls behind any load above that for good."""
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO outbox (event_id, event_type, topic, key, value, headers, published_at)
                SELECT gen_random_uuid(), 'LowStockAlert', 'inventory-events', 'k' || (n % 100),
                       convert_to(repeat('v', 200), 'UTF8'), '{}',
                       now() - CASE WHEN n <= :due THEN interval '2 hours' ELSE interval '1 minute' END
                FROM generate_series(1, :total) n
                """
            ),
            {"due": PURGE_BACKLOG, "total": PURGE_BACKLOG + 100},
        )
    # The default purge interval (a minute): a relay that keeps up must not wait for it between chunks.
    relay = OutboxRelay(make_settings(relay_published_retention_s=3600), db.dsn)
    running = background.start(relay.run)

    async def purged() -> bool:
        running.check()
        return await db.fetchval("SELECT count(*) FROM outbox WHERE published_at < now() - interval '1 hour'") == 0

    await wait_until(purged, timeout=15, what=f"{PURGE_BACKLOG} rows past their retention purged")
    await running.stopped()
    assert await db.fetchval("SELECT count(*) FROM outbox") == 100, "rows within their retention were purged"


async def test_a_purge_never_deletes_an_unpublished_row_however_old(db, make_settings):
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO outbox (event_id, event_type, topic, key, value, headers, created_at, published_at)
                SELECT gen_random_uuid(), 'LowStockAlert', 'inventory-events', 'k', '\\x00', '{}',
                       now() - interval '1 day', CASE WHEN n % 10 = 0 THEN NULL ELSE now() - interval '1 day' END
                FROM generate_series(1, 25000) n
                """
            )
        )
    relay = OutboxRelay(make_settings(relay_published_retention_s=0), db.dsn)
    conn = await asyncpg.connect(db.dsn, server_settings={"search_path": db.schema})
    try:
        while await relay.purge(conn):
            pass
    finally:
        await conn.close()

    assert await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") == 0
    assert await db.unpublished() == 2500


def _leads(service: str) -> bool:
    return REGISTRY.get_sample_value("relay_is_leader", {"service": service}) == 1
