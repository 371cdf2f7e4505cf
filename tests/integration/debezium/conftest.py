"""Fixtures for the Debezium relay's tests (`make test-debezium`; deselected from `make test` by the
`debezium` marker for now): the real Postgres and Kafka of `make up-infra`, and a Kafka Connect
worker, the one on 127.0.0.1:8083 if it runs, else one these fixtures start and stop.

Isolation from the running services: the connector reads a test schema's outbox (`cdc_test`, the same
columns as a service's, prepared by the same infra/connect/outbox_cdc.sql), through its own
publication and slot, and its rows name a scratch topic. Everything is removed afterwards, the slot
first (a forgotten slot holds the WAL forever).
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from shared.kafka.acls import connect_acls, grant

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "infra/scripts"))
import connectors  # noqa: E402  (infra/scripts is not a package)

SERVICE = SCHEMA = "cdc_test"
WRITER = "cdc_test_svc"  # the role that writes the test outbox, as a service's <svc>_svc does
PG_HOST = os.environ.get("POSTGRES_HOST", "127.0.0.1")
PG_PORT = os.environ.get("POSTGRES_PORT", "5433")


def psql(sql: str) -> str:
    """SQL as the Postgres superuser (peer authentication through infra/postgres/postgres.sh)."""
    done = subprocess.run(
        ["bash", str(REPO / "infra/postgres/postgres.sh"), "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"],
        input=sql,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr}")
    return done.stdout


def rest_answers() -> bool:
    try:
        return httpx.get(f"{connectors.REST}/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def connect_worker() -> Iterator[str]:
    """Connect's REST address: the running worker's, or one started here (its log in .run/logs)."""
    if rest_answers():
        yield connectors.REST
        return
    log = (REPO / ".run/logs/connect-tests.log").open("ab")
    worker = subprocess.Popen(
        ["bash", str(REPO / "infra/connect/connect.sh"), "worker"], stdout=log, stderr=log, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 180
        while not rest_answers():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Connect worker did not start: see .run/logs/connect-tests.log")
            time.sleep(0.5)
        yield connectors.REST
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()


@pytest.fixture(scope="session")
def cdc_outbox() -> Iterator[str]:
    """The test schema's outbox, prepared for CDC without delete-on-insert (so the built-in relay can
    read the same rows): its DSN, as the writer role."""
    psql(
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
        psql(
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
    connect_worker: str, cdc_outbox: str, kafka_admin: AIOKafkaAdminClient
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
