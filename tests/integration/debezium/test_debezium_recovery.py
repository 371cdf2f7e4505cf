"""The Debezium relay through crashes: the Connect worker SIGKILLed mid-stream, and Postgres restarted
under the connector, while rows are committed to the test outbox at a steady rate. Nothing committed
is lost; what the worker sends again is the same records again.

Why duplicates come and why they are harmless: the worker commits its source offsets (the last LSN
handed to Kafka) every offset.flush.interval.ms (5 s, infra/connect/worker.properties.template); a
killed worker's successor resumes from the last committed LSN and sends the records after it again,
with their event ids. Consumers drop an event id they processed before (shared.consumer's
processed_events): tests/integration/machinery/test_worker_batches.py,
test_an_event_twice_in_one_batch_and_an_event_processed_before_are_applied_once_and_counted_as_duplicates.
Here each duplicate is checked to be byte-identical (key, value, headers) to the first copy, so the
consumers' check by event id is all it takes.

Run with `make test-debezium` (-s prints the measurements). The kill test needs a worker of its own:
it is skipped when one already runs on 127.0.0.1:8083 (RELAY=debezium make up), which is not its to kill.
"""

import asyncio
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from conftest import (
    REPO,
    SCHEMA,
    Connector,
    ConnectWorker,
    connectors,
    event_id_of,
    insert_envelopes,
    records_of_events,
    released,
)

pytestmark = [pytest.mark.infra, pytest.mark.debezium]

RATE = 200  # rows/s
BATCH = 10  # rows per transaction


@dataclass
class SteadyWriter:
    """Commits BATCH rows every BATCH/RATE seconds until stopped, through outages: a batch whose
    connection broke is retried on a new connection. `committed` holds the ids of acknowledged
    commits with their commit time; `attempted` every id sent (a commit cut off before its answer may
    or may not have happened)."""

    dsn: str
    topic: str
    committed: dict[str, float] = field(default_factory=dict)
    attempted: set[str] = field(default_factory=set)
    failures: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        conn: asyncpg.Connection | None = None
        batch = [released(correlation_id="recovery") for _ in range(BATCH)]
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                if conn is None:
                    conn = await asyncpg.connect(self.dsn, server_settings={"search_path": SCHEMA}, timeout=2)
                self.attempted.update(str(e.event_id) for e in batch)
                await insert_envelopes(conn, self.topic, batch)
                now = time.time()
                self.committed.update((str(e.event_id), now) for e in batch)
            # InternalClientError: a connection whose server went away mid-statement can be left
            # in a protocol state that refuses the next one; it is dropped like any broken one.
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError):
                self.failures += 1
                if conn is not None:
                    conn.terminate()
                conn = None
            # New ids even after a failure: a commit cut off before its answer may have happened.
            batch = [released(correlation_id="recovery") for _ in range(BATCH)]
            next_at += BATCH / RATE
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if conn is not None:
            await conn.close()


async def records_of(topic: str, ids: set[str], timeout: float = 180) -> list[ConsumerRecord]:
    """Every record of these events on the topic (one partition), once each id arrived at least once:
    the duplicates come before the later ids' first copies, so they are all in."""

    def all_arrived(records: list[ConsumerRecord]) -> bool:
        return ids <= {event_id_of(record) for record in records}

    records = await records_of_events(topic, ids, until=all_arrived, timeout=timeout)
    missing = ids - {event_id_of(record) for record in records}
    assert not missing, f"{len(missing)} of {len(ids)} events not in Kafka after {timeout} s"
    return records


def assert_duplicates_are_exact_copies(records: list[ConsumerRecord]) -> int:
    first: dict[str, ConsumerRecord] = {}
    duplicates = 0
    for record in records:
        original = first.setdefault(event_id_of(record), record)
        if original is not record:
            duplicates += 1
            assert (record.key, record.value, record.headers) == (original.key, original.value, original.headers)
    return duplicates


async def stream_through(
    connector: Connector, outbox: str, outage: Callable[[], None], before: float = 4, after: float = 6
) -> tuple[SteadyWriter, float]:
    """Rows at RATE/s for `before` s, then `outage()` (while the writer goes on), then `after` more s."""
    writer, stop = SteadyWriter(outbox, connector.topic), asyncio.Event()
    writing = asyncio.create_task(writer.run(stop))
    await asyncio.sleep(before)
    outage_at = time.time()
    await asyncio.to_thread(outage)
    await asyncio.sleep(after)
    stop.set()
    await writing
    return writer, outage_at


async def test_a_worker_killed_mid_stream_loses_nothing_and_resends_only_exact_copies_of_events_already_sent(
    connect_worker: ConnectWorker, cdc_outbox: str, cdc_connector: Connector
):
    if not connect_worker.owned:
        pytest.skip("a Connect worker already runs on 127.0.0.1:8083 (not this test's to kill)")

    def crash_and_restart() -> None:
        connect_worker.kill()
        connect_worker.start()

    writer, killed_at = await stream_through(cdc_connector, cdc_outbox, crash_and_restart)

    records = await records_of(cdc_connector.topic, set(writer.committed))
    assert {event_id_of(r) for r in records} <= writer.attempted
    duplicates = assert_duplicates_are_exact_copies(records)
    connectors.wait_until_running(cdc_connector.name, timeout=60)
    after_kill = [r.timestamp / 1000 for r in records if writer.committed.get(event_id_of(r), 0) > killed_at]
    print(
        f"\nSIGKILL: {len(writer.committed)} rows committed, {len(records)} records, {duplicates} duplicates; "
        f"first row committed after the kill in Kafka {min(after_kill) - killed_at:.1f} s after the kill"
    )


async def test_a_postgres_restart_under_the_connector_loses_nothing_and_the_stream_resumes(
    cdc_outbox: str, cdc_connector: Connector
):
    """Debezium takes the broken replication connection for a retriable error and its task restarts
    itself (errors.max.retries: -1, unlimited, by default, with a back-off up to 10 s)."""

    def restart_postgres() -> None:
        subprocess.run(["bash", str(REPO / "infra/postgres/postgres.sh"), "restart"], check=True, capture_output=True)

    writer, restarted_at = await stream_through(cdc_connector, cdc_outbox, restart_postgres)

    assert writer.failures > 0, "the writer never saw Postgres down: the restart tested nothing"
    records = await records_of(cdc_connector.topic, set(writer.committed))
    assert {event_id_of(r) for r in records} <= writer.attempted
    duplicates = assert_duplicates_are_exact_copies(records)
    status = connectors.wait_until_running(cdc_connector.name, timeout=60)
    assert status["tasks"][0]["state"] == "RUNNING"
    after = [r.timestamp / 1000 for r in records if writer.committed.get(event_id_of(r), 0) > restarted_at]
    print(
        f"\nPostgres restart: {len(writer.committed)} rows committed ({writer.failures} batches failed), "
        f"{len(records)} records, {duplicates} duplicates; "
        f"first row committed after the restart in Kafka {min(after) - restarted_at:.1f} s after it began"
    )
