"""Fixtures for the Debezium relay's tests (`make test-debezium`, which `make test` runs; the `debezium`
marker keeps them out of a bare pytest run): the real Postgres and Kafka of `make up-infra`, and a Kafka Connect
worker, the one on 127.0.0.1:8083 if it runs, else one these fixtures start and stop.

Isolation from the running services: the connector reads a test schema's outbox (`cdc_test`, the same
columns as a service's, prepared by the same infra/connect/outbox_cdc.sql), through its own
publication and slot, and its rows name a scratch topic. Everything is removed afterwards, the slot
first (a forgotten slot holds the WAL forever).
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from shared.events.base import Envelope
from shared.events.inventory import StockReleased
from shared.events.order import OrderLine
from shared.kafka.acls import connect_acls, grant
from shared.kafka.security import admin_client_config
from shared.outbox.writer import INSERT_ROWS, insert_arguments, outbox_row

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "infra/scripts"))
import connectors  # noqa: E402  (infra/scripts is not a package)
from postgres_superuser import superuser_sql  # noqa: E402

SERVICE = SCHEMA = "cdc_test"
WRITER = "cdc_test_svc"  # the role that writes the test outbox, as a service's <svc>_svc does
PG_HOST = os.environ.get("POSTGRES_HOST", "127.0.0.1")
PG_PORT = os.environ.get("POSTGRES_PORT", "5433")


def rest_answers() -> bool:
    try:
        return httpx.get(f"{connectors.REST}/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class ConnectWorker:
    """A Kafka Connect worker these tests started (`owned`), which they may kill and start again, or
    the one already running on 127.0.0.1:8083, which they leave alone."""

    def __init__(self, owned: bool) -> None:
        self.owned = owned
        self.rest = connectors.REST
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> None:
        """Start the worker (`connect.sh worker` execs the JVM: the process is the worker) and wait
        for its REST API."""
        with (REPO / ".run/logs/connect-tests.log").open("ab") as log:
            self._process = subprocess.Popen(
                ["bash", str(REPO / "infra/connect/connect.sh"), "worker"],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not rest_answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Connect worker did not start: see .run/logs/connect-tests.log")
            time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last offset commit, as a crashed machine or the OOM killer."""
        assert self._process is not None and self.owned
        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=30)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=60)


@pytest.fixture(scope="session")
def connect_worker() -> Iterator[ConnectWorker]:
    """The running worker on 127.0.0.1:8083, or one started here (its log in .run/logs)."""
    if rest_answers():
        yield ConnectWorker(owned=False)
        return
    worker = ConnectWorker(owned=True)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def cdc_outbox() -> Iterator[str]:
    """The test schema's outbox, prepared for CDC without delete-on-insert (so the built-in relay can
    read the same rows): its DSN, as the writer role."""
    superuser_sql(
        f"""
        SELECT 'CREATE ROLE {WRITER} LOGIN PASSWORD ''{WRITER}'''
        WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{WRITER}') \\gexec
        GRANT CONNECT, TEMPORARY ON DATABASE ecommerce TO {WRITER};
        DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
        CREATE SCHEMA {SCHEMA} AUTHORIZATION {WRITER};
        CREATE TABLE {SCHEMA}.outbox (LIKE orders.outbox INCLUDING ALL);
        ALTER TABLE {SCHEMA}.outbox OWNER TO {WRITER};
        """
    )
    connectors.prepare_database(SERVICE, SCHEMA, delete_on_insert=False)
    try:
        yield f"postgresql://{WRITER}:{WRITER}@{PG_HOST}:{PG_PORT}/ecommerce"
    finally:
        superuser_sql(
            f"""
            DROP PUBLICATION IF EXISTS {SERVICE}_outbox_pub;
            DROP SCHEMA {SCHEMA} CASCADE;
            DROP OWNED BY {SERVICE}_cdc;
            DROP ROLE IF EXISTS {SERVICE}_cdc;
            """
        )


@dataclass(frozen=True)
class Connector:
    name: str
    topic: str  # where the test outbox's rows go (their topic column)


@pytest.fixture(scope="session")
async def cdc_connector(
    connect_worker: ConnectWorker, cdc_outbox: str, kafka_admin: AIOKafkaAdminClient
) -> AsyncIterator[Connector]:
    """The test outbox's connector, running, with a scratch topic the connect principal may write."""
    await connectors.provision_kafka()  # Connect's topics (the heartbeats') and ACLs, as make test-debezium does
    topic = f"cdc-test-{uuid.uuid4().hex[:8]}"
    await kafka_admin.create_topics([NewTopic(topic, 1, 3)], timeout_ms=30_000)
    await grant(kafka_admin, connect_acls((topic,)))
    name = f"{SERVICE}-outbox"
    connectors.register(name, connectors.connector_config(SERVICE, SCHEMA, db_host=PG_HOST, db_port=int(PG_PORT)))
    try:
        connectors.wait_until_running(name, timeout=90)
        yield Connector(name, topic)
    finally:
        connectors.remove(name, connectors.slot_name(SERVICE))
        await kafka_admin.delete_topics([topic])


def released(**metadata: object) -> Envelope:
    lines = (OrderLine(sku="WIDGET", quantity=4),)
    return Envelope(event=StockReleased(order_id=uuid.uuid4(), items=lines), source="inventory", **metadata)  # type: ignore[arg-type]


async def insert_envelopes(conn: asyncpg.Connection, topic: str, envelopes: Sequence[Envelope]) -> None:
    """The outbox rows the writer makes (shared.outbox.writer), addressed to the test's topic, in one
    statement (its own transaction unless the caller opened one)."""
    await conn.execute(
        INSERT_ROWS, *insert_arguments([outbox_row(envelope) | {"topic": topic} for envelope in envelopes])
    )


async def write_to_outbox(dsn: str, topic: str, *envelopes: Envelope) -> None:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        await insert_envelopes(conn, topic, envelopes)
    finally:
        await conn.close()


def event_id_of(record: ConsumerRecord) -> str:
    return bytes(dict(record.headers)["eventId"]).decode()


async def records_of_events(
    topic: str, event_ids: set[str], *, until: Callable[[list[ConsumerRecord]], bool], timeout: float
) -> list[ConsumerRecord]:
    """The records of these events on the topic's one partition (other tests' events share it), read
    from its beginning until `until(records)` holds or `timeout` passes: what was read by then."""
    consumer = AIOKafkaConsumer(**admin_client_config(), enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while not until(records) and time.monotonic() < deadline:
            batches = await consumer.getmany(partition, timeout_ms=500)
            records.extend(r for r in batches.get(partition, []) if event_id_of(r) in event_ids)
        return records
    finally:
        await consumer.stop()
