"""Fixtures for tests against the real local infrastructure (`make up-infra`): three Kafka brokers
and the Postgres cluster. Every wait polls a condition until a deadline; nothing sleeps blindly.

Addresses default to the local stack and can be pointed elsewhere:
  KAFKA_BOOTSTRAP_SERVERS       127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096
  KAFKA_ADMIN_PASSWORD          the admin principal's (the tests' own clients connect as it), admin-kafka-dev
  POSTGRES_HOST, POSTGRES_PORT  127.0.0.1, 5433 (database ecommerce; each role's password is its name)
"""

import asyncio
import functools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from dev_token import mint_token
from shared.db import create_engine, create_session_factory
from shared.events import Envelope
from shared.events.codec import decode
from shared.kafka.provisioning import wait_for_cluster
from shared.kafka.security import admin_client_config
from shared.outbox.tables import outbox
from shared.settings import ServiceSettings
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

T = TypeVar("T")

DEFAULT_BOOTSTRAP = "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
BROKERS = 3
SERVICE_ROLES = ("order_svc", "payment_svc", "inventory_svc")
# What an admin request raises while the broker it picked is down or restarting.
KAFKA_UNAVAILABLE = (KafkaError, OSError)


REPO = Path(__file__).resolve().parents[2]


@functools.cache
def migrate_to_head(service: str) -> None:
    """A service's schema at head, as its pre-start step leaves it (idempotent; once per run)."""
    alembic = Path(sys.executable).with_name("alembic")
    ini = REPO / "services" / service / "alembic.ini"
    subprocess.run([str(alembic), "-c", str(ini), "upgrade", "head"], check=True, capture_output=True)


@pytest.fixture(scope="session")
def migrate() -> Callable[[str], None]:
    return migrate_to_head


@pytest.fixture(scope="session")
async def service_sessions() -> AsyncIterator[Callable[[ServiceSettings], async_sessionmaker[AsyncSession]]]:
    """`service_sessions(settings)`: sessions on the service's own schema, migrated to head first."""
    engines: list[AsyncEngine] = []

    def open_sessions(settings: ServiceSettings) -> async_sessionmaker[AsyncSession]:
        migrate_to_head(settings.service_name)
        engines.append(create_engine(settings, role="tests"))
        return create_session_factory(engines[-1])

    yield open_sessions
    for engine in engines:
        await engine.dispose()


@pytest.fixture
def outbox_events(sessions) -> Callable[[str | uuid.UUID], Awaitable[list[Envelope]]]:
    """`await outbox_events(key)`: the envelopes a service (the test's `sessions`) wrote to its
    outbox under that record key (an order id or a SKU), in order."""

    async def read(key: str | uuid.UUID) -> list[Envelope]:
        async with sessions() as session:
            rows = await session.execute(
                select(outbox.c.value, outbox.c.headers).where(outbox.c.key == str(key)).order_by(outbox.c.id)
            )
            return [decode(row.value, [(k, v.encode()) for k, v in row.headers.items()]) for row in rows]

    return read


def bearer(subject: str, role: str) -> dict[str, str]:
    """The Authorization header of a caller, its token minted as `make token` mints it."""
    return {"Authorization": f"Bearer {mint_token(subject, role)}"}


def client_of(app: Any, caller: tuple[str, str] | None) -> httpx.AsyncClient:
    """An HTTP client that calls the app in process, as `caller` (subject, role), or with no token."""
    headers = bearer(*caller) if caller else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service", headers=headers)


@pytest.fixture(scope="session")
def in_process_api() -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """`async with in_process_api(app, caller=(subject, role)) as client`: the app's lifespan run as
    uvicorn would run it, and an HTTP client that calls it in process with that caller's token."""

    @asynccontextmanager
    async def serve(app: Any, caller: tuple[str, str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
        async with app.router.lifespan_context(app), client_of(app, caller) as client:
            yield client

    return serve


@pytest.fixture(scope="session")
def caller_of() -> Callable[[Any, str, str], httpx.AsyncClient]:
    """`async with caller_of(app, subject, role) as client`: another caller of an app whose lifespan
    runs (in_process_api)."""
    return lambda app, subject, role: client_of(app, (subject, role))


def new_topic_name() -> str:
    return f"it-{uuid.uuid4().hex[:12]}"


async def poll_until(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float,
    interval: float = 0.25,
    what: str,
    tolerate: tuple[type[Exception], ...] = (),
) -> T:
    """Await `probe` until it returns something truthy and return that; fail after `timeout` seconds.
    A probe that raises one of `tolerate` counts as "not yet" (a broker that is down refuses requests)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = await probe()
        except tolerate as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout:.0f}s: {what} (last probe: {last!r})")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def eventually() -> Callable[..., Awaitable[Any]]:
    """`await eventually(probe, timeout=..., what=...)`: poll an async probe with a deadline."""
    return poll_until


@pytest.fixture(scope="session")
def bootstrap_servers() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP)


@pytest.fixture(scope="session")
def admin_kafka(bootstrap_servers: str) -> dict[str, Any]:
    """The admin principal's client settings (shared.kafka.security): the tests' own Kafka clients
    connect as it, so that no ACL limits their scratch topics and groups."""
    return admin_client_config(bootstrap_servers)


@pytest.fixture(scope="session")
def postgres_dsns() -> dict[str, str]:
    """A plain (asyncpg) DSN for each service role, keyed by role name."""
    host = os.environ.get("POSTGRES_HOST", "127.0.0.1")
    port = os.environ.get("POSTGRES_PORT", "5433")
    return {role: f"postgresql://{role}:{role}@{host}:{port}/ecommerce" for role in SERVICE_ROLES}


@pytest.fixture(scope="session")
async def kafka_admin(bootstrap_servers: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client on a cluster whose three brokers are registered."""
    await wait_for_cluster(admin_client_config(bootstrap_servers), brokers=BROKERS, timeout=120)
    admin = AIOKafkaAdminClient(**admin_client_config(bootstrap_servers), client_id="integration-tests")
    await admin.start()
    yield admin
    await admin.close()


async def under_replicated_partitions(admin: AIOKafkaAdminClient) -> list[str]:
    """Every partition of every topic whose in-sync replicas are not all of its replicas."""
    lagging = []
    for topic in await admin.describe_topics():
        for p in topic["partitions"]:
            if p["error_code"] != 0 or sorted(p["isr"]) != sorted(p["replicas"]):
                lagging.append(f"{topic['topic']}-{p['partition']} replicas={p['replicas']} isr={p['isr']}")
    return lagging


async def wait_until_fully_replicated(admin: AIOKafkaAdminClient, timeout: float = 180) -> None:
    async def registered_and_in_sync() -> bool:
        cluster = await admin.describe_cluster()
        return len(cluster["brokers"]) == BROKERS and not await under_replicated_partitions(admin)

    await poll_until(
        registered_and_in_sync,
        timeout=timeout,
        interval=1,
        what="all brokers registered and in every ISR",
        tolerate=KAFKA_UNAVAILABLE,
    )


@pytest.fixture(scope="session")
def kafka_unavailable() -> tuple[type[Exception], ...]:
    """The errors a Kafka probe may raise while a broker is down: pass as `eventually(..., tolerate=)`."""
    return KAFKA_UNAVAILABLE


@pytest.fixture(scope="session")
def fully_replicated() -> Callable[..., Awaitable[None]]:
    """`await fully_replicated(admin)`: wait until every broker is back in every partition's ISR."""
    return wait_until_fully_replicated


@pytest.fixture
async def healthy_cluster(kafka_admin: AIOKafkaAdminClient) -> AIOKafkaAdminClient:
    """The admin client, once no partition anywhere is under-replicated (a test starts from health)."""
    await wait_until_fully_replicated(kafka_admin)
    return kafka_admin


@pytest.fixture
async def scratch_topics(kafka_admin: AIOKafkaAdminClient) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Create throwaway topics with unique names (`await scratch_topics(partitions=..., ...)`);
    each is deleted after the test, and the test waits until the deletion is visible."""
    created: list[str] = []

    async def create(*, partitions: int = 1, replication_factor: int = 3, config: dict[str, str] | None = None) -> str:
        name = new_topic_name()
        response = await kafka_admin.create_topics(
            [NewTopic(name, partitions, replication_factor, topic_configs=config or {})], timeout_ms=30_000
        )
        for topic, code, *rest in response.topic_errors:
            assert code == 0, f"creating {topic} failed with error code {code}: {rest}"
        created.append(name)
        await wait_until_visible(kafka_admin, name, partitions)
        return name

    yield create
    await delete_topics(kafka_admin, created)


async def wait_until_visible(admin: AIOKafkaAdminClient, name: str, partitions: int) -> None:
    """Metadata of a new topic reaches every broker a moment after creation; so do its leaders."""

    async def every_partition_has_a_leader() -> bool:
        (topic,) = await admin.describe_topics([name])
        parts = topic["partitions"]
        return topic["error_code"] == 0 and len(parts) == partitions and all(p["leader"] >= 0 for p in parts)

    await poll_until(every_partition_has_a_leader, timeout=30, what=f"topic {name} has leaders")


async def delete_topics(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    if not names:
        return
    await admin.delete_topics(names, timeout_ms=30_000)

    async def gone() -> bool:
        return not set(names) & set(await admin.list_topics())

    await poll_until(gone, timeout=60, what=f"topics {names} deleted")


@pytest.fixture(scope="session")
def topic_cleanup() -> Callable[[AIOKafkaAdminClient, list[str]], Awaitable[None]]:
    """`await topic_cleanup(admin, names)`: delete topics and wait until they are gone."""
    return delete_topics


@pytest.fixture
def unique_topic_name() -> str:
    """A topic name no one else uses, for a test that creates the topic itself."""
    return new_topic_name()
