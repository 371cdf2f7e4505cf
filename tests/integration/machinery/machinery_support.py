"""Helpers of the machinery tests, shared by the tests, their fixtures (conftest.py) and the helper
processes (relay_process.py, worker_process.py)."""

import asyncio
import inspect
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from prometheus_client import REGISTRY
from shared.consumer import SessionBatch
from shared.events import Envelope, LowStockAlert
from shared.events.codec import encode
from shared.kafka.security import admin_client_config
from sqlalchemy import text

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
TEST_ROLE = "machinery_test"  # its password is its name, as for the service roles
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096")
PG_HOST = os.environ.get("POSTGRES_HOST", "127.0.0.1")
PG_PORT = os.environ.get("POSTGRES_PORT", "5433")
DATABASE_URL = f"postgresql+asyncpg://{TEST_ROLE}:{TEST_ROLE}@{PG_HOST}:{PG_PORT}/ecommerce"

# The tests' own tables, next to the machinery tables in each test's schema. A worker's handler
# counts how often it applied each event: 2 in `applied` is an effect applied twice.
TEST_TABLES = (
    """
    CREATE TABLE effects (
        event_id uuid PRIMARY KEY,
        key text NOT NULL,
        applied int NOT NULL
    )
    """,
    "CREATE TABLE aggregates (key text PRIMARY KEY, seq int NOT NULL)",
)
APPLY_EFFECT = text(
    """
    INSERT INTO effects (event_id, key, applied) VALUES (:event_id, :key, 1)
    ON CONFLICT (event_id) DO UPDATE SET applied = effects.applied + 1
    """
)


async def apply_effect(batch: SessionBatch, envelope: Envelope) -> None:
    """The handler of the worker tests: the effect of an event, in the worker's transaction."""
    await batch.session.execute(APPLY_EFFECT, {"event_id": envelope.event_id, "key": envelope.key})


def alert(sku: str, available: int = 1) -> Envelope:
    """The machinery tests' event: keyed by SKU; `available` tells a key's events apart (a sequence)."""
    return Envelope.new(LowStockAlert(sku=sku, available=available, reorder_level=0))


async def published_records(
    kafka: Any, publish: Callable[..., Awaitable[None]], start: Any, *envelopes: Envelope
) -> list[ConsumerRecord]:
    """Publish through the outbox and relay (the `publish` fixture); the records as they are on the
    topic, read from `start` (the `kafka` fixture's offsets)."""
    await publish(*envelopes)
    ids = {e.event_id for e in envelopes}
    keys = {e.key.encode() for e in envelopes}
    records: list[ConsumerRecord] = await kafka.read_to_end(
        start, keep=lambda r: r.key in keys and event_id_of(r) in ids
    )
    assert len(records) == len(envelopes)
    return records


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def unique_keys(count: int, prefix: str = "mt") -> list[str]:
    """Keys (SKUs) no earlier run used: a test finds its records on the shared topics by them."""
    run = uuid.uuid4().hex[:10]
    return [f"{prefix}-{run}-{n:03d}" for n in range(count)]


async def wait_until(probe: Callable[[], Awaitable[T] | T], *, timeout: float, what: str, interval: float = 0.05) -> T:
    """Call `probe` (awaiting what it returns, if need be) until it gives something truthy and return
    that; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout:g}s: {what} (last probe: {last!r})")
        await asyncio.sleep(interval)


def consumer_events(service: str, topic: str, event_type: str, outcome: str) -> int:
    """How many records the in-process workers of `service` counted with this outcome."""
    labels = {"service": service, "topic": topic, "event_type": event_type, "outcome": outcome}
    return int(REGISTRY.get_sample_value("consumer_events_total", labels) or 0)


# --- Kafka --------------------------------------------------------------------------------------


def header(record: ConsumerRecord, name: str) -> bytes | None:
    return dict(record.headers or ()).get(name)


def event_id_of(record: ConsumerRecord) -> uuid.UUID | None:
    raw = header(record, "eventId")
    return uuid.UUID(raw.decode()) if raw else None


def by_key(records: Iterable[ConsumerRecord]) -> dict[str, list[ConsumerRecord]]:
    grouped: dict[str, list[ConsumerRecord]] = {}
    for record in records:
        grouped.setdefault(record.key.decode(), []).append(record)
    return grouped


def by_event_id(records: Iterable[ConsumerRecord]) -> dict[uuid.UUID | None, list[ConsumerRecord]]:
    grouped: dict[uuid.UUID | None, list[ConsumerRecord]] = {}
    for record in records:
        grouped.setdefault(event_id_of(record), []).append(record)
    return grouped


async def retrying(operation: Callable[[], Awaitable[T]], *, timeout: float = 60) -> T:
    """Run an admin request again while it fails for a passing reason: another test on this cluster
    SIGKILLs brokers now and then, and a request to a dead coordinator fails until a new one is known."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await operation()
        except (KafkaError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def send_to_partition(topic: str, partition: int, *envelopes: Envelope) -> list[Any]:
    """Write the events straight to one partition of the topic; the records' metadata, in order."""
    producer = AIOKafkaProducer(**admin_client_config(KAFKA), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = []
        for envelope in envelopes:
            record = encode(envelope)
            sent.append(
                await (
                    await producer.send(
                        topic, value=record.value, key=record.key, headers=record.headers, partition=partition
                    )
                )
            )
        return sent
    finally:
        await producer.stop()


class Kafka:
    """Reading the shared topics from known offsets, and placing consumer groups."""

    def __init__(self, admin: AIOKafkaAdminClient) -> None:
        self.admin = admin

    async def partitions(self, topic: str) -> list[TopicPartition]:
        (described,) = await retrying(lambda: self.admin.describe_topics([topic]))
        return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]

    @asynccontextmanager
    async def consumer(self, **config: Any) -> AsyncIterator[AIOKafkaConsumer]:
        consumer = AIOKafkaConsumer(**admin_client_config(KAFKA), enable_auto_commit=False, **config)
        await consumer.start()
        # Let the consumer's background tasks start: stopped before they ever ran (a read with nothing
        # to read), aiokafka's group-less coordinator raises CancelledError from its close().
        await asyncio.sleep(0)
        try:
            yield consumer
        finally:
            await consumer.stop()

    async def end_offsets(self, *topics: str) -> dict[TopicPartition, int]:
        """Where each partition of the topics ends now: a test reads from here what it writes later."""
        tps = [tp for topic in topics for tp in await self.partitions(topic)]
        async with self.consumer() as consumer:
            return await consumer.end_offsets(tps)

    async def place_group(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        """Commit `offsets` for a group nobody is in yet, so its first member starts there."""
        async with self.consumer(group_id=group) as consumer:
            consumer.assign(list(offsets))
            await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        offsets = await retrying(lambda: self.admin.list_consumer_group_offsets(group))
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def wait_committed_past(
        self, group: str, records: Iterable[ConsumerRecord], running: "Running | None" = None, timeout: float = 60
    ) -> None:
        """Wait until `group` committed offsets past every one of `records` (it handled them all)."""
        needed: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            needed[tp] = max(needed.get(tp, 0), record.offset + 1)

        async def committed_past_all() -> bool:
            if running is not None:
                running.check()
            committed = await self.committed(group)
            return all(committed.get(tp, -1) >= offset for tp, offset in needed.items())

        await wait_until(committed_past_all, timeout=timeout, what=f"group {group} committed past {needed}")

    async def group_members(self, group: str) -> tuple[str, int]:
        """The group's state and how many members it has, as the coordinator sees them."""
        (described,) = await retrying(lambda: self.admin.describe_consumer_groups([group]))
        (_, _, state, _, _, members, *_) = described.groups[0]
        return state, len(members)

    async def read(
        self,
        start: dict[TopicPartition, int],
        *,
        until: Callable[[list[ConsumerRecord]], bool],
        keep: Callable[[ConsumerRecord], bool],
        timeout: float,
        what: str,
    ) -> list[ConsumerRecord]:
        """Records from `start` on that `keep` accepts, each partition in order, once `until` holds."""
        kept: list[ConsumerRecord] = []
        async with self.consumer(auto_offset_reset="earliest") as consumer:
            consumer.assign(list(start))
            for tp, offset in start.items():
                consumer.seek(tp, offset)
            deadline = time.monotonic() + timeout
            while not until(kept):
                if time.monotonic() > deadline:
                    raise AssertionError(f"not true after {timeout:g}s: {what} ({len(kept)} records kept)")
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    kept.extend(r for r in records if keep(r))
        return kept

    async def read_to_end(
        self, start: dict[TopicPartition, int], *, keep: Callable[[ConsumerRecord], bool], timeout: float = 30
    ) -> list[ConsumerRecord]:
        """Records from `start` up to where the partitions end now."""
        async with self.consumer() as consumer:
            end = await consumer.end_offsets(list(start))
        positions = dict(start)

        def tracked(record: ConsumerRecord) -> bool:
            tp = TopicPartition(record.topic, record.partition)
            positions[tp] = max(positions[tp], record.offset + 1)
            return keep(record)

        def at_end(_: list[ConsumerRecord]) -> bool:
            return all(positions[tp] >= end[tp] for tp in start)

        return await self.read(start, until=at_end, keep=tracked, timeout=timeout, what="read to the end")


# --- Running relays and workers -----------------------------------------------------------------


@dataclass
class Running:
    """A component's `run(stop)` as a task."""

    stop: asyncio.Event
    task: asyncio.Task[None]

    async def stopped(self, timeout: float = 30) -> None:
        """Set the stop event and wait until `run` returned (re-raising what it raised)."""
        self.stop.set()
        await asyncio.wait_for(asyncio.shield(self.task), timeout=timeout)

    def check(self) -> None:
        """Fail at once if the component died instead of running on."""
        if self.task.done():
            self.task.result()
            raise AssertionError("the component returned although nobody stopped it")


class Background:
    """Starts `run(stop)` coroutines as tasks; stops the ones still running when the test ends."""

    def __init__(self) -> None:
        self._running: list[Running] = []

    def start(self, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> Running:
        stop = asyncio.Event()
        running = Running(stop, asyncio.create_task(run(stop)))
        self._running.append(running)
        return running

    async def stop_all(self) -> None:
        for running in self._running:
            running.stop.set()
        for running in self._running:
            with suppress(Exception):
                await asyncio.wait_for(running.task, timeout=30)


class Child:
    """A relay or worker in a subprocess. Its stdout carries one JSON status object per line; its
    logs go to a file, shown when a test fails."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.status: dict[str, Any] = {}
        self._reader = asyncio.create_task(self._read_status())

    async def _read_status(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            with suppress(ValueError):
                self.status = json.loads(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def exited(self, timeout: float) -> int:
        """The exit code (minus the signal number when a signal ended it)."""
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"process {self.pid} still runs after {timeout:g}s; log:\n{self.log()}") from None
        await self._reader
        return code

    def kill(self, signal_number: int) -> None:
        with suppress(ProcessLookupError):
            self.process.send_signal(signal_number)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


# --- Inside the helper processes ----------------------------------------------------------------


def report(**status: Any) -> None:
    """A helper process tells the test how it is doing: one JSON line on stdout."""
    print(json.dumps(status), flush=True)


def log_to_stderr() -> None:
    """Keep stdout for status lines: the machinery's logs go to stderr (the test's log file)."""
    import logging
    import sys

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)


# --- A database that can go away ---------------------------------------------------------------

# Postgres's answer to a connection while it starts up, shuts down or recovers: an ErrorResponse
# (severity FATAL, SQLSTATE 57P03), then it closes the connection.
_STARTING_UP = b"".join(
    [
        b"SFATAL\x00",
        b"VFATAL\x00",
        b"C57P03\x00",
        b"Mthe database system is starting up\x00",
        b"\x00",
    ]
)
_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104


class DatabaseProxy:
    """A TCP proxy in front of the shared Postgres that a test can cut and restore: a real network
    fault for the component behind it, while the test and everyone else keep using Postgres.

    `cut()` closes every connection through it and refuses new ones (connect gets ECONNREFUSED);
    `starting_up()` closes every connection and answers new ones as a restarting Postgres does
    (FATAL 57P03 after the startup packet); `restore()` forwards again, on the same port.
    """

    def __init__(self, host: str = PG_HOST, port: int = int(PG_PORT)) -> None:
        self._upstream = (host, port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._mode = "forward"
        self.port = 0
        self.refused_as_starting_up = 0  # connections answered with 57P03

    def url(self, database_url: str = DATABASE_URL) -> str:
        """`database_url` pointed at the proxy."""
        return database_url.replace(f"@{PG_HOST}:{PG_PORT}/", f"@127.0.0.1:{self.port}/")

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        self._mode = "refuse"
        if self._server is not None:
            self._server.close()
            self._server = None
        self._close_pipes()

    async def starting_up(self) -> None:
        if self._server is None:
            await self.start()
        self._mode = "starting_up"
        self._close_pipes()

    async def restore(self) -> None:
        self._mode = "forward"
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.cut()

    def _close_pipes(self) -> None:
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == "starting_up":
            await self._answer_starting_up(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update((writer, up_writer))
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self._pipes.discard(writer)
            writer.transport.abort()

    async def _answer_starting_up(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = int.from_bytes(await reader.readexactly(4), "big")
                body = await reader.readexactly(length - 4)
                if int.from_bytes(body[:4], "big") in (_SSL_REQUEST, _GSSENC_REQUEST):
                    writer.write(b"N")  # no encryption here; the client goes on in plain text
                    continue
                break  # the startup packet: answer it as a starting Postgres does
            writer.write(b"E" + (len(_STARTING_UP) + 4).to_bytes(4, "big") + _STARTING_UP)
            await writer.drain()
            self.refused_as_starting_up += 1
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
