"""Fixtures for the machinery tests: the outbox relay and the event worker against the real Postgres
and Kafka of `make up-infra`.

Isolation, because the topics are shared and persistent and other people use them at the same time:
- every test gets a fresh Postgres schema (owned by the `machinery_test` role) holding the machinery
  tables, so its relay has an outbox and an advisory lock of its own;
- every component gets a unique service name (so metrics are its own) and a unique consumer group;
- a consumer group is placed at explicit offsets before its worker starts (where the topic ended
  when the test began), so it never reads the history of earlier runs;
- records are read back from offsets the test noted before it wrote, filtered by the test's keys.

Every wait polls a condition until a deadline; nothing sleeps blindly.
"""

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from alembic.migration import MigrationContext
from alembic.operations import Operations
from machinery_support import (
    DATABASE_URL,
    HERE,
    KAFKA,
    REPO,
    TEST_ROLE,
    TEST_TABLES,
    Background,
    Child,
    DatabaseProxy,
    Kafka,
    retrying,
    unique,
    wait_until,
)
from postgres_superuser import superuser_sql
from shared.db import asyncpg_dsn, create_engine, create_session_factory
from shared.events.base import Envelope
from shared.events.topics import dead_letter_topic
from shared.kafka.provisioning import wait_for_cluster
from shared.kafka.security import admin_client_config, as_admin
from shared.outbox import add_to_outbox
from shared.outbox.migration import create_machinery_tables
from shared.outbox.relay import OutboxRelay
from shared.settings import ServiceSettings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


@pytest.fixture(scope="session")
def machinery_role() -> str:
    """The login role the tests' schemas belong to; created idempotently, like the service roles."""
    superuser_sql(
        f"""
        SELECT 'CREATE ROLE {TEST_ROLE} LOGIN PASSWORD ''{TEST_ROLE}'''
        WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{TEST_ROLE}') \\gexec
        GRANT CONNECT, TEMPORARY ON DATABASE ecommerce TO {TEST_ROLE};
        """
    )
    return TEST_ROLE


@dataclass
class Database:
    """A fresh schema with the machinery tables (as a service's first migration creates them) and the
    tests' `effects` and `aggregates` tables."""

    schema: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    dsn: str

    async def fetchval(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()

    async def fetch(self, sql: str, **params: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())

    async def execute(self, sql: str, **params: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text(sql), params)

    async def write_events(self, *envelopes: Envelope) -> None:
        """Add events to the outbox in one committed transaction."""
        async with self.sessions() as session, session.begin():
            await add_to_outbox(session, *envelopes)

    async def unpublished(self) -> int:
        return await self.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")

    async def effects(self) -> dict[uuid.UUID, int]:
        """How often each event's effect was applied, by event id."""
        return {row.event_id: row.applied for row in await self.fetch("SELECT event_id, applied FROM effects")}


@pytest.fixture
async def db(machinery_role: str) -> AsyncIterator[Database]:
    schema = f"mt_{uuid.uuid4().hex[:12]}"
    superuser_sql(f"CREATE SCHEMA {schema} AUTHORIZATION {machinery_role}")
    settings = ServiceSettings(
        service_name=schema,
        database_url=DATABASE_URL,
        db_schema=schema,
        db_pool_size=25,
        http_port=0,
        relay_metrics_port=0,
        worker_metrics_port=0,
    )
    engine = create_engine(settings, role="test")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: create_machinery_tables(Operations(MigrationContext.configure(c)), schema))
            for statement in TEST_TABLES:
                await conn.execute(text(statement))
        yield Database(schema, engine, create_session_factory(engine), asyncpg_dsn(DATABASE_URL))
    finally:
        await engine.dispose()
        # Every session of the test's components is named after its schema; end stragglers (a
        # component that did not stop) so that dropping the schema never waits for a lock.
        superuser_sql(
            f"""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE usename = '{machinery_role}' AND application_name LIKE '{schema}%';
            DROP SCHEMA {schema} CASCADE;
            """
        )


@pytest.fixture
def make_settings(db: Database) -> Callable[..., ServiceSettings]:
    """`make_settings(**overrides)`: settings of a component on the test's schema. Each call has its
    own service name (so its metrics are its own) and, unless given, its own consumer group."""

    def build(**overrides: Any) -> ServiceSettings:
        values: dict[str, Any] = {
            "service_name": unique(db.schema),
            "environment": "test",
            "log_format": "console",
            "database_url": DATABASE_URL,
            "db_schema": db.schema,
            "kafka_bootstrap_servers": KAFKA,
            **as_admin(),  # scratch topics and groups, which no service's ACL grants
            "http_port": 0,
            "relay_metrics_port": 0,
            "worker_metrics_port": 0,
            "consumer_group": unique("mt-group"),
            "consumer_retry_backoff_s": 0.1,
            "consumer_retry_backoff_max_s": 0.5,
            "consumer_fetch_max_wait_ms": 50,
            "relay_lock_retry_s": 0.2,
            "relay_poll_interval_s": 0.5,
        }
        values.update(overrides)
        return ServiceSettings(**values)

    return build


@pytest.fixture(scope="session")
async def kafka() -> AsyncIterator[Kafka]:
    await wait_for_cluster(admin_client_config(KAFKA), brokers=3, timeout=120)
    admin = AIOKafkaAdminClient(**admin_client_config(KAFKA), client_id="machinery-tests")
    await admin.start()
    yield Kafka(admin)
    await admin.close()


@pytest.fixture
async def background() -> AsyncIterator[Background]:
    """`background.start(component.run)`: run a relay or worker in this process until the test ends."""
    running = Background()
    yield running
    await running.stop_all()


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Child]]]:
    """`await spawn("relay_process.py", settings, *args)`: a helper script in a subprocess; whatever
    still runs when the test ends is killed."""
    children: list[Child] = []

    async def start(script: str, settings: ServiceSettings, *args: str) -> Child:
        log_path = tmp_path / f"{Path(script).stem}-{len(children)}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / script),
                settings.model_dump_json(),
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=REPO,
            )
        child = Child(process, log_path)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.process.returncode is None:
            child.kill(9)
        await child.exited(timeout=30)


@pytest.fixture
def publish(db: Database, make_settings: Callable[..., ServiceSettings], background: Background):
    """`await publish(*envelopes)`: write events to the outbox, run a relay until they are published."""

    async def write_and_relay(*envelopes: Envelope) -> None:
        await db.write_events(*envelopes)
        running = background.start(OutboxRelay(make_settings(), db.dsn).run)

        async def all_published() -> bool:
            running.check()
            return await db.unpublished() == 0

        await wait_until(all_published, timeout=30, what="the relay published the outbox")
        await running.stopped()

    return write_and_relay


@pytest.fixture
async def database_proxy() -> AsyncIterator[DatabaseProxy]:
    """A proxy in front of Postgres that the test can cut and restore (machinery_support.DatabaseProxy)."""
    proxy = DatabaseProxy()
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def worker_sessions() -> AsyncIterator[Callable[[ServiceSettings], async_sessionmaker[AsyncSession]]]:
    """`worker_sessions(settings)`: a session factory on an engine of its own, built from the
    settings as a worker process builds it (so through the proxy when the settings point there)."""
    engines: list[AsyncEngine] = []

    def build(settings: ServiceSettings) -> async_sessionmaker[AsyncSession]:
        engines.append(create_engine(settings, role="worker"))
        return create_session_factory(engines[-1])

    yield build
    for engine in engines:
        await engine.dispose()


@pytest.fixture
async def own_topic(kafka: Kafka) -> AsyncIterator[str]:
    """A topic of this test alone, with two partitions, so the test decides which records share a
    partition and a second group member takes exactly one of them; and its dead-letter topic.
    Both deleted when the test ends."""
    name = unique("mt-topic")
    names = [name, dead_letter_topic(name)]
    await retrying(
        lambda: kafka.admin.create_topics([NewTopic(n, num_partitions=2, replication_factor=3) for n in names])
    )

    async def both_have_two_partitions() -> bool:
        return all([len(await kafka.partitions(n)) == 2 for n in names])

    await wait_until(both_have_two_partitions, timeout=30, what=f"topics {names} are ready")
    yield name
    with suppress(Exception):
        await kafka.admin.delete_topics(names)
