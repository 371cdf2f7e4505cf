"""The event worker while its database is away, through a proxy the test cuts (machinery_support.
DatabaseProxy): a real network fault for the worker, while the test and the running services keep
the shared Postgres. An outage never spends a record's retry budget, whatever shape it takes (refused
connections, a Postgres that answers "starting up"); a worker stopped during one leaves the record
in hand uncommitted for its successor instead of dead-lettering it; a failing purge of the dedup
table is retried later instead of ending the worker.
"""

import signal

import pytest
from aiokafka import TopicPartition
from machinery_support import (
    alert,
    apply_effect,
    consumer_events,
    event_id_of,
    published_records,
    unique_keys,
    wait_until,
)
from shared.consumer import EventWorker
from shared.consumer.dead_letter import ORIGINAL_CONSUMER_GROUP
from shared.events import Envelope
from shared.events.topics import INVENTORY_EVENTS, dead_letter_topic

pytestmark = [pytest.mark.infra, pytest.mark.timeout(120)]


async def dead_letters_of(kafka, dlt_start, group: str):
    return await kafka.read_to_end(
        dlt_start, keep=lambda r: dict(r.headers or ()).get(ORIGINAL_CONSUMER_GROUP) == group.encode()
    )


@pytest.mark.parametrize("outage", ["refused", "starting_up"])
async def test_a_record_that_meets_a_database_outage_waits_for_it_without_spending_its_retry_budget_and_is_processed_once_when_it_is_back(  # noqa: E501
    outage, db, make_settings, kafka, publish, background, database_proxy, worker_sessions
):
    (sku,) = unique_keys(1)
    before, event = alert(sku, 1), alert(sku, 2)
    start = await kafka.end_offsets(INVENTORY_EVENTS)
    dlt_start = await kafka.end_offsets(dead_letter_topic(INVENTORY_EVENTS))
    # A budget that a few seconds of outage would spend many times over.
    settings = make_settings(
        database_url=database_proxy.url(),
        consumer_retry_attempts=2,
        consumer_retry_backoff_s=0.05,
        consumer_retry_backoff_max_s=0.2,
    )
    await kafka.place_group(settings.group_id, start)
    worker = background.start(
        EventWorker(settings, worker_sessions(settings), {"LowStockAlert": apply_effect}, [INVENTORY_EVENTS]).run
    )
    (first,) = await published_records(kafka, publish, start, before)
    await kafka.wait_committed_past(settings.group_id, [first], worker)

    await (database_proxy.cut() if outage == "refused" else database_proxy.starting_up())
    (record,) = await published_records(kafka, publish, start, event)

    async def waited_five_budgets_or_moved_on() -> bool:
        worker.check()
        waits = consumer_events(settings.service_name, INVENTORY_EVENTS, "LowStockAlert", "waited_for_database")
        committed = await kafka.committed(settings.group_id)
        return waits >= 10 or committed.get(TopicPartition(record.topic, record.partition), 0) > record.offset

    # Refused by the network, or told "the database system is starting up" (SQLSTATE 57P03, which
    # reaches the worker as a DBAPIError whose connection is not invalidated).
    await wait_until(waited_five_budgets_or_moved_on, timeout=30, what="10 attempts during the outage")
    await database_proxy.restore()
    await kafka.wait_committed_past(settings.group_id, [record], worker)

    assert consumer_events(settings.service_name, INVENTORY_EVENTS, "LowStockAlert", "dead_lettered") == 0
    assert consumer_events(settings.service_name, INVENTORY_EVENTS, "LowStockAlert", "retried") == 0
    assert await dead_letters_of(kafka, dlt_start, settings.group_id) == []
    assert (await db.effects()).get(event.event_id) == 1
    await worker.stopped()


async def test_a_worker_stopped_by_sigterm_during_a_database_outage_dead_letters_nothing_and_its_successor_processes_the_record_once(  # noqa: E501
    db, make_settings, kafka, publish, spawn, background, database_proxy
):
    (sku,) = unique_keys(1)
    before, during = alert(sku, 1), alert(sku, 2)
    start = await kafka.end_offsets(INVENTORY_EVENTS)
    dlt_start = await kafka.end_offsets(dead_letter_topic(INVENTORY_EVENTS))
    settings = make_settings(consumer_retry_attempts=2, consumer_retry_backoff_s=0.05, consumer_retry_backoff_max_s=0.2)
    await kafka.place_group(settings.group_id, start)
    child = await spawn(
        "worker_process.py",
        settings.model_copy(update={"database_url": database_proxy.url()}),
        INVENTORY_EVENTS,
        "LowStockAlert",
        sku,
    )
    (first,) = await published_records(kafka, publish, start, before)
    await kafka.wait_committed_past(settings.group_id, [first])

    await database_proxy.cut()
    (record,) = await published_records(kafka, publish, start, during)
    await wait_until(
        lambda: child.log_path.read_text(errors="replace").count("database unreachable") >= 3,
        timeout=30,
        what="the worker retries the record against the cut database",
    )
    child.kill(signal.SIGTERM)
    exit_code = await child.exited(timeout=30)
    committed = await kafka.committed(settings.group_id)
    letters = await dead_letters_of(kafka, dlt_start, settings.group_id)

    assert exit_code == 0, child.log()
    assert letters == [], "a record was dead-lettered because its worker stopped during an outage"
    assert committed[TopicPartition(record.topic, record.partition)] == record.offset, "only the record before"

    await database_proxy.restore()
    successor = background.start(
        EventWorker(settings, db.sessions, {"LowStockAlert": apply_effect}, [INVENTORY_EVENTS]).run
    )
    await kafka.wait_committed_past(settings.group_id, [record], successor)
    effects = await db.effects()

    assert (effects.get(before.event_id), effects.get(during.event_id)) == (1, 1)
    assert await dead_letters_of(kafka, dlt_start, settings.group_id) == []
    await successor.stopped()


async def test_a_purge_of_the_dedup_table_that_fails_is_retried_later_and_the_worker_keeps_consuming(
    db, make_settings, kafka, publish, background, database_proxy, worker_sessions
):
    (sku,) = unique_keys(1)
    event = alert(sku, 1)
    start = await kafka.end_offsets(INVENTORY_EVENTS)
    settings = make_settings(
        database_url=database_proxy.url(),
        consumer_processed_retention_s=3600,
        consumer_purge_interval_s=0.5,
        consumer_retry_backoff_max_s=0.2,
    )
    await kafka.place_group(settings.group_id, start)
    await db.execute(
        "INSERT INTO processed_events (consumer, event_id, processed_at)"
        " SELECT :consumer, gen_random_uuid(), now() - interval '2 hours' FROM generate_series(1, 5)",
        consumer=settings.group_id,
    )
    # The worker purges when it starts: against a restarting database, that purge fails.
    await database_proxy.starting_up()
    worker = background.start(
        EventWorker(settings, worker_sessions(settings), {"LowStockAlert": apply_effect}, [INVENTORY_EVENTS]).run
    )
    await wait_until(lambda: database_proxy.refused_as_starting_up >= 1, timeout=30, what="a purge was tried")
    worker.check()
    await database_proxy.restore()
    (record,) = await published_records(kafka, publish, start, event)
    await kafka.wait_committed_past(settings.group_id, [record], worker)

    async def expired_rows() -> int:
        return await db.fetchval(
            "SELECT count(*) FROM processed_events WHERE consumer = :c AND processed_at < now() - interval '1 hour'",
            c=settings.group_id,
        )

    async def purged() -> bool:
        worker.check()
        return await expired_rows() == 0

    await wait_until(purged, timeout=30, what="a later purge deleted the expired rows")
    assert (await db.effects()).get(event.event_id) == 1
    await worker.stopped()


async def test_a_handler_that_times_out_calling_another_system_spends_its_retry_budget_and_is_dead_lettered_it_is_no_database_outage(  # noqa: E501
    db, make_settings, kafka, publish, background
):
    (sku,) = unique_keys(1)
    event = alert(sku, 1)
    start = await kafka.end_offsets(INVENTORY_EVENTS)
    dlt_start = await kafka.end_offsets(dead_letter_topic(INVENTORY_EVENTS))
    settings = make_settings(consumer_retry_attempts=2, consumer_retry_backoff_s=0.05, consumer_retry_backoff_max_s=0.1)
    await kafka.place_group(settings.group_id, start)

    async def gateway_times_out(session, envelope: Envelope) -> None:
        raise TimeoutError("the payment gateway did not answer")  # an OSError, but not the database's

    worker = background.start(
        EventWorker(settings, db.sessions, {"LowStockAlert": gateway_times_out}, [INVENTORY_EVENTS]).run
    )
    (record,) = await published_records(kafka, publish, start, event)
    await kafka.wait_committed_past(settings.group_id, [record], worker, timeout=30)
    (letter,) = await dead_letters_of(kafka, dlt_start, settings.group_id)

    assert event_id_of(letter) == event.event_id
    assert consumer_events(settings.service_name, INVENTORY_EVENTS, "LowStockAlert", "retried") == 2
    await worker.stopped()
