"""Relay throughput: how fast the outbox relay drains a backlog, next to a plain aiokafka producer
sending the same records with the same producer settings, in the same run on the same machine.

    make bench                                   (or: .venv/bin/python bench/relay_throughput.py)
    .venv/bin/python bench/relay_throughput.py --events 20000 --repeat 1      a quick look
    .venv/bin/python bench/relay_throughput.py --profile                      + a pyinstrument profile
    .venv/bin/python bench/relay_throughput.py --traced sampled               rows in traces: publish spans

What it does, against the local stack (`make up-infra`):
1. A schema `bench_relay` (dropped and created again, owned by the `machinery_test` role) with the
   machinery tables, and a topic `bench-events` (deleted and created again: 12 partitions, RF 3,
   min ISR 2), so the event topics are never flooded.
2. A backlog of 100,000 outbox rows: StockReserved events with two lines, ten per order over 10,000
   order ids, exactly as the outbox writer serializes them, but addressed to `bench-events`.
3. Alternating, `--repeat` times each:
   relay  the real `OutboxRelay.run()` from a fresh backlog: time from start until every row is
          published (sent, acknowledged and marked), then stopped;
   plain  one AIOKafkaProducer with `ServiceSettings.producer_config()`, sending the same keys,
          values and headers without awaiting each send, awaiting the acks in chunks.
4. Medians of events/s, the ratio relay/plain, the peak RSS of this process; a table on stdout and
   JSON in bench/results/relay_throughput.json.
Both run on uvloop, as the services do.
"""

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiokafka
import asyncpg
import orjson
import uvloop
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from shared.db import asyncpg_dsn
from shared.events import Envelope, PricedLine, StockReserved
from shared.events.codec import encode
from shared.kafka.security import LOCAL_KAFKA, admin_client_config, as_admin
from shared.logging import configure_logging
from shared.outbox.relay import OutboxRelay
from shared.settings import ServiceSettings
from shared.tracing import configure_tracing

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "infra/scripts"))
from postgres_superuser import superuser_sql  # noqa: E402  (infra/scripts is not a package)

RESULTS = REPO / "bench" / "results" / "relay_throughput.json"
SCHEMA = "bench_relay"
TOPIC = "bench-events"
ROLE = "machinery_test"
PARTITIONS = 12
PLAIN_CHUNK = 10_000

KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", LOCAL_KAFKA)
DATABASE_URL = (
    f"postgresql+asyncpg://{ROLE}:{ROLE}@{os.environ.get('POSTGRES_HOST', '127.0.0.1')}:"
    f"{os.environ.get('POSTGRES_PORT', '5433')}/ecommerce"
)

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


RELAY_OVERRIDES: dict[str, Any] = {}


def settings() -> ServiceSettings:
    return ServiceSettings(
        **RELAY_OVERRIDES,
        service_name="bench",
        database_url=DATABASE_URL,
        db_schema=SCHEMA,
        kafka_bootstrap_servers=KAFKA,
        **as_admin(),  # its own scratch topic, which no service's ACL grants
        http_port=0,
        relay_metrics_port=0,
        worker_metrics_port=0,
        log_level="WARNING",
    )


# --- Setup --------------------------------------------------------------------------------------


def create_schema() -> None:
    superuser_sql(
        f"""
        SELECT 'CREATE ROLE {ROLE} LOGIN PASSWORD ''{ROLE}'''
        WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') \\gexec
        GRANT CONNECT, TEMPORARY ON DATABASE ecommerce TO {ROLE};
        DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
        CREATE SCHEMA {SCHEMA} AUTHORIZATION {ROLE};
        """
    )


async def create_tables(dsn: str) -> None:
    """The machinery tables as a service's first migration creates them (create_machinery_tables)."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from shared.db import create_engine
    from shared.outbox.migration import create_machinery_tables

    engine = create_engine(settings(), role="bench")
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: create_machinery_tables(Operations(MigrationContext.configure(c)), SCHEMA))
    await engine.dispose()


async def recreate_topic() -> None:
    admin = AIOKafkaAdminClient(**admin_client_config(KAFKA), client_id="bench")
    await admin.start()
    try:
        if TOPIC in await admin.list_topics():
            await admin.delete_topics([TOPIC], timeout_ms=30_000)
            await _until(lambda: _absent(admin), "bench topic deleted")
        await _until(lambda: _create(admin), "bench topic created")

        async def has_leaders() -> bool:
            (described,) = await admin.describe_topics([TOPIC])
            parts = described["partitions"]
            return described["error_code"] == 0 and len(parts) == PARTITIONS and all(p["leader"] >= 0 for p in parts)

        await _until(has_leaders, "bench topic has leaders")
    finally:
        await admin.close()


async def _absent(admin: AIOKafkaAdminClient) -> bool:
    return TOPIC not in await admin.list_topics()


async def _create(admin: AIOKafkaAdminClient) -> bool:
    # Right after a delete the broker may still say the topic exists (or is being deleted): retry.
    response = await admin.create_topics(
        [NewTopic(TOPIC, PARTITIONS, 3, topic_configs={"min.insync.replicas": "2", "retention.ms": "3600000"})],
        timeout_ms=30_000,
    )
    return all(code == 0 for _, code, *_ in response.topic_errors)


async def _until(probe, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await probe():
                return
        except KafkaError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done after {timeout}s: {what}")
        await asyncio.sleep(0.5)


def backlog(
    events: int, orders: int, chunk: int = 10_000, traced: str | None = None
) -> Iterator[list[tuple[Any, ...]]]:
    """Outbox rows (event_id, event_type, topic, key, value, headers) of realistic StockReserved events,
    `chunk` at a time; `traced`: each written in a trace of its own (a traceparent header), "sampled"
    (recorded: the relay makes a span per row) or "unsampled" (no exporter: the relay makes none)."""
    order_ids = [uuid.uuid4() for _ in range(orders)]
    for begin in range(0, events, chunk):
        rows = []
        for n in range(begin, min(begin + chunk, events)):
            event = StockReserved(
                order_id=order_ids[n % orders],
                items=(
                    PricedLine(sku=f"SKU-{n % 997:04d}", quantity=1 + n % 3, unit_price=1999),
                    PricedLine(sku=f"SKU-{(n * 7) % 991:04d}", quantity=2, unit_price=4550),
                ),
                total_amount=(1 + n % 3) * 1999 + 2 * 4550,
                currency="EUR",
            )
            flags = "01" if traced == "sampled" else "00"
            traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-{flags}" if traced else None
            envelope = Envelope.new(event, traceparent=traceparent)
            record = encode(envelope)  # what add_to_outbox stores, byte for byte
            headers = orjson.dumps({name: value.decode() for name, value in record.headers}).decode()
            rows.append((envelope.event_id, envelope.event_type, TOPIC, record.key.decode(), record.value, headers))
        yield rows


async def store_backlog(
    conn: asyncpg.Connection, events: int, orders: int, traced: str | None = None
) -> tuple[list[Record], float]:
    """Keep the backlog in a table of its own, from which every relay run starts afresh. Returns the
    same records for the plain producer (which sends from memory) and the mean value size."""
    await conn.execute(
        """
        CREATE TABLE backlog (
            id bigint GENERATED ALWAYS AS IDENTITY, event_id uuid, event_type text, topic text, key text,
            value bytea, headers jsonb
        )
        """
    )
    records: list[Record] = []
    value_bytes = 0
    for rows in backlog(events, orders, traced=traced):
        await conn.copy_records_to_table(
            "backlog", records=rows, columns=["event_id", "event_type", "topic", "key", "value", "headers"]
        )
        for _, _, _, key, value, headers in rows:
            records.append(
                (key.encode(), value, [(name, text.encode()) for name, text in orjson.loads(headers).items()])
            )
            value_bytes += len(value)
    return records, value_bytes / events


async def load_backlog(conn: asyncpg.Connection) -> None:
    """A fresh outbox holding the whole backlog, unpublished, analyzed as autovacuum would have it."""
    await conn.execute("TRUNCATE outbox")
    await conn.execute(
        """
        INSERT INTO outbox (event_id, event_type, topic, key, value, headers)
        SELECT event_id, event_type, topic, key, value, headers FROM backlog ORDER BY id
        """
    )
    await conn.execute("VACUUM ANALYZE outbox")


# --- Measurements -------------------------------------------------------------------------------


async def run_relay(dsn: str, events: int) -> tuple[float, float]:
    """Seconds (wall, CPU of this process) from start until the relay published the whole backlog."""
    relay = OutboxRelay(settings(), dsn)
    stop = asyncio.Event()
    cpu = time.process_time()
    started = time.perf_counter()
    running = asyncio.create_task(relay.run(stop))
    while relay.published < events:
        if running.done():
            running.result()
            raise RuntimeError("the relay stopped before it drained the backlog")
        await asyncio.sleep(0.002)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    stop.set()
    await running
    return elapsed, cpu


async def run_plain(records: list[Record]) -> tuple[float, float]:
    """Seconds (wall, CPU) for a plain producer with the same settings to send every record and get
    every ack."""
    producer = AIOKafkaProducer(**settings().producer_config())
    cpu = time.process_time()
    started = time.perf_counter()
    await producer.start()
    try:
        for begin in range(0, len(records), PLAIN_CHUNK):
            pending = [
                await producer.send(TOPIC, value=value, key=key, headers=headers)
                for key, value, headers in records[begin : begin + PLAIN_CHUNK]
            ]
            await asyncio.gather(*pending)
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        await producer.stop()


def _progress(repetition: int, name: str, events: int, seconds: float, cpu: float) -> None:
    print(f"  run {repetition}  {name}  {events / seconds:>10,.0f} events/s  ({seconds:.2f} s, CPU {cpu:.2f} s)")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def main(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("bench", "bench", level="WARNING", fmt="console")
    dsn = asyncpg_dsn(DATABASE_URL)
    print(f"setting up: schema {SCHEMA}, topic {TOPIC}, {args.events:,} StockReserved events, {args.orders:,} orders")
    create_schema()
    await create_tables(dsn)
    await recreate_topic()
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    if args.traced:  # as a relay process sets it up: the OTEL_* environment, no exporter by default
        configure_tracing("bench", "relay")
    plain_records, value_bytes = await store_backlog(conn, args.events, args.orders, traced=args.traced)
    rss_after_setup = peak_rss_mib()
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(async_mode="disabled")
    runs: dict[str, list[float]] = {"relay": [], "plain": []}
    cpu_per_event: dict[str, list[float]] = {"relay": [], "plain": []}
    try:
        for repetition in range(1, args.repeat + 1):
            await load_backlog(conn)
            if profiler is not None and repetition == args.repeat:
                profiler.start()
            seconds, cpu = await run_relay(dsn, args.events)
            if profiler is not None and repetition == args.repeat:
                profiler.stop()
            left = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            assert left == 0, f"{left} rows left unpublished"
            runs["relay"].append(args.events / seconds)
            cpu_per_event["relay"].append(cpu / args.events * 1e6)
            _progress(repetition, "relay", args.events, seconds, cpu)

            seconds, cpu = await run_plain(plain_records)
            runs["plain"].append(args.events / seconds)
            cpu_per_event["plain"].append(cpu / args.events * 1e6)
            _progress(repetition, "plain", args.events, seconds, cpu)
    finally:
        await conn.close()
        superuser_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    if profiler is not None:
        profile = REPO / "bench" / "results" / "relay_profile.txt"
        profile.parent.mkdir(parents=True, exist_ok=True)
        profile.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        print(f"profile of the last relay run: {profile.relative_to(REPO)}")

    relay, plain = statistics.median(runs["relay"]), statistics.median(runs["plain"])
    config = settings()
    return {
        "benchmark": "relay_throughput",
        "command": "make bench  (.venv/bin/python bench/relay_throughput.py)",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "events": args.events,
        "orders": args.orders,
        "mean_value_bytes": round(value_bytes),
        "topic": f"{TOPIC} ({PARTITIONS} partitions, RF 3, min ISR 2)",
        "producer": {k: v for k, v in config.producer_config().items() if k != "bootstrap_servers"},
        "relay_batch_size": config.relay_batch_size,
        "plain_chunk": PLAIN_CHUNK,
        "repeat": args.repeat,
        "runs_events_per_s": {name: [round(x) for x in values] for name, values in runs.items()},
        "median_events_per_s": {"relay": round(relay), "plain": round(plain)},
        "ratio_relay_to_plain": round(relay / plain, 3),
        "median_cpu_us_per_event": {name: round(statistics.median(v), 1) for name, v in cpu_per_event.items()},
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "peak_rss_mib_after_setup": round(rss_after_setup, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "aiokafka": aiokafka.__version__,
            "event_loop": "uvloop",
        },
    }


def report(result: dict[str, Any]) -> None:
    relay, plain = result["median_events_per_s"]["relay"], result["median_events_per_s"]["plain"]
    runs = result["runs_events_per_s"]
    print()
    print(f"Relay throughput, {result['events']:,} events (median of {result['repeat']}, events/s)")
    print(f"  {'':<24}{'median':>12}   runs")
    print(f"  {'relay (OutboxRelay.run)':<24}{relay:>12,}   {', '.join(f'{x:,}' for x in runs['relay'])}")
    print(f"  {'plain aiokafka producer':<24}{plain:>12,}   {', '.join(f'{x:,}' for x in runs['plain'])}")
    print(f"  {'ratio relay / plain':<24}{result['ratio_relay_to_plain']:>12.2f}   (target >= 0.70)")
    print(
        f"  {'peak RSS':<24}{result['peak_rss_mib']:>9.1f} MiB   (after setup, with the records in memory: "
        f"{result['peak_rss_mib_after_setup']:.1f} MiB)"
    )
    print(
        f"  {result['machine']['cpus']} CPUs, load {result['machine']['load_average_1m']}; results in "
        f"{RESULTS.relative_to(REPO)}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile the last relay run with pyinstrument")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON results")
    parser.add_argument("--relay-batch-size", type=int, help="override the relay's batch size (default: settings)")
    parser.add_argument(
        "--traced",
        choices=("sampled", "unsampled"),
        help="every row in a trace of its own, recorded (a publish span per row) or not (OTEL_*)",
    )
    arguments = parser.parse_args()
    if arguments.relay_batch_size:
        RELAY_OVERRIDES["relay_batch_size"] = arguments.relay_batch_size
    outcome = uvloop.run(main(arguments))
    if not arguments.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(outcome, indent=2) + "\n")
    report(outcome)
    sys.exit(0)
