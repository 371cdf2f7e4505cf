"""The two relays side by side: the built-in relay (OutboxRelay, polling the table, woken by NOTIFY)
and Debezium (Kafka Connect reading the WAL, infra/connect/connector.json), next to a plain producer,
in the same run on the same machine.

    make bench                                  (or: .venv/bin/python bench/relay_compare.py)
    .venv/bin/python bench/relay_compare.py --events 20000 --latency-seconds 10      a quick look

What it does, against the local stack (`make up-infra`; a Kafka Connect worker is started for the run
unless one answers on 127.0.0.1:8083, RELAY=debezium make up):
1. bench/relay_throughput.py's setup, reused: the schema `bench_relay` with the machinery tables, the
   topic `bench-events` (12 partitions, RF 3), a backlog of 100,000 StockReserved outbox rows.
2. Drain, once each:
   builtin   the real OutboxRelay.run() in a process of its own (so that its CPU seconds and peak
             RSS are the relay's alone) from the whole backlog in the outbox, until all published;
   plain     one AIOKafkaProducer with the services' producer settings sending the same records
             (relay_throughput.run_plain), in this process: CPU seconds only (it holds the backlog);
   debezium  the outbox prepared for CDC as a service's is (infra/connect/outbox_cdc.sql, delete on
             insert), a connector `bench-outbox` registered, then the backlog inserted by 10,000-row
             transactions: time from the first commit until the topic's end offsets grew by every
             row; CPU seconds and peak RSS of the Connect worker's JVM (psutil) meanwhile.
3. Latency at a fixed commit rate (--rate rows/s in transactions of 10, for --latency-seconds),
   each relay running alone: commit -> record latency = the record's timestamp (CreateTime: set by
   the relay's producer when it sends the record, aiokafka and the Java producer alike; the topic has
   no LogAppendTime) minus the writer's clock read right after its COMMIT returned. It leaves out the
   broker's acknowledgement (a few ms) for both alike. p50/p90/p99/max.
   Before the Debezium runs, --warmup-events rows drained and not recorded: the Connect JVM's JIT
   warm-up would otherwise fall on the first variant.
4. Debezium again with Debezium's own defaults (poll.interval.ms=500, max.batch.size=2048,
   max.queue.size=8192) in place of infra/connect/connector.json's 50, 8192, 32768: drain and
   latency, what the connector's settings buy (--no-stock skips it).
5. JSON in bench/results/relay_compare.json and a plot in bench/results/relay_compare.png; the
   connector, its slot, the publication, the schema, the roles and the topic are removed at the end.
"""

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import relay_throughput as rt
import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from shared.db import asyncpg_dsn
from shared.kafka.acls import connect_acls, grant
from shared.kafka.security import admin_client_config
from shared.logging import configure_logging
from shared.outbox.writer import INSERT_ROWS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "infra/scripts"))
import connectors  # noqa: E402  (infra/scripts is not a package)
from postgres_superuser import superuser_sql  # noqa: E402

RESULTS = REPO / "bench" / "results" / "relay_compare.json"
PLOT = RESULTS.with_suffix(".png")
SERVICE = "bench"  # connector bench-outbox, slot bench_outbox_slot, role bench_cdc, publication bench_outbox_pub
CONNECTOR = connectors.connector_name(SERVICE)
INSERT_CHUNK = 10_000
WRITER_BATCH = 10
STOCK = {"poll.interval.ms": "500", "max.batch.size": "2048", "max.queue.size": "8192"}  # Debezium's defaults


# --- The processes measured ---------------------------------------------------------------------


class ConnectWorker:
    """The Connect worker's JVM: the running one (found by its main class), or one started here."""

    def __init__(self) -> None:
        self.started: subprocess.Popen[bytes] | None = None
        if not connectors._rest_answers():
            log = (REPO / ".run/logs/connect-bench.log").open("ab")
            self.started = subprocess.Popen(
                ["bash", str(REPO / "infra/connect/connect.sh"), "worker"],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            connectors._until(connectors._rest_answers, "Connect's REST API answers", timeout=180)
        java = [
            p for p in psutil.process_iter(["cmdline"]) if "ConnectDistributed" in " ".join(p.info["cmdline"] or [])
        ]
        assert len(java) == 1, f"expected one Connect worker, found {len(java)}"
        self.process = java[0]

    def stop(self) -> None:
        if self.started is not None:
            os.killpg(self.started.pid, signal.SIGTERM)
            self.started.wait(timeout=60)


class Usage:
    """CPU seconds and peak RSS of one process while a measurement runs (RSS sampled on each tick)."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        times = process.cpu_times()
        self.cpu_start = times.user + times.system
        self.peak_rss = process.memory_info().rss

    def tick(self) -> None:
        self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)

    def result(self) -> dict[str, float]:
        times = self.process.cpu_times()
        self.tick()
        return {
            "cpu_s": round(times.user + times.system - self.cpu_start, 2),
            "peak_rss_mib": round(self.peak_rss / 2**20),
        }


async def builtin_relay_process(events: int) -> asyncio.subprocess.Process:
    """This script as a child running OutboxRelay.run() until it published `events` rows, once it
    said it is about to start."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child-relay", str(events), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    assert (await child.stdout.readline()).strip() == b"ready"
    return child


async def child_relay(events: int) -> None:
    configure_logging("bench", "relay", level="WARNING", fmt="console")
    print("ready", flush=True)
    seconds, cpu = await rt.run_relay(asyncpg_dsn(rt.DATABASE_URL), events)
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_rss_mib": peak_rss_since_exec_mib()}), flush=True)


def peak_rss_since_exec_mib() -> float:
    """VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across execve, so a child would report
    the peak of the parent it was forked from (this script with the backlog in memory)."""
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


# --- Kafka --------------------------------------------------------------------------------------


async def end_offsets(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    partitions = [TopicPartition(rt.TOPIC, p) for p in range(rt.PARTITIONS)]
    offsets: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    return offsets


async def wait_for_records(
    consumer: AIOKafkaConsumer, since: dict[TopicPartition, int], count: int, usage: Usage | None, timeout: float = 600
) -> float:
    """perf_counter() when the topic holds `count` records more than at `since` (checked every 20 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        now = await end_offsets(consumer)
        if sum(now.values()) - sum(since.values()) >= count:
            return time.perf_counter()
        if usage is not None:
            usage.tick()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sum(now.values()) - sum(since.values())} of {count} records after {timeout} s")
        await asyncio.sleep(0.02)


async def timestamps_of(since: dict[TopicPartition, int], ids: set[str], timeout: float = 300) -> dict[str, float]:
    """Each event's record timestamp (s), reading every partition from `since`; the first copy."""
    consumer = AIOKafkaConsumer(**admin_client_config(rt.KAFKA), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(since))
        for partition, offset in since.items():
            consumer.seek(partition, offset)
        found: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(ids) - len(found)} of {len(ids)} events not read after {timeout} s")
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                for record in records:
                    event_id = bytes(dict(record.headers)["eventId"]).decode()
                    if event_id in ids:
                        found.setdefault(event_id, record.timestamp / 1000)
        return found
    finally:
        await consumer.stop()


# --- Measurements -------------------------------------------------------------------------------


async def drain_builtin(conn: asyncpg.Connection, events: int) -> dict[str, Any]:
    await rt.load_backlog(conn)
    child = await builtin_relay_process(events)
    out, _ = await child.communicate()
    measured = json.loads(out.decode().strip().splitlines()[-1])
    left = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    assert left == 0, f"{left} rows left unpublished"
    return {
        "events_per_s": round(events / measured["seconds"]),
        "seconds": round(measured["seconds"], 2),
        "cpu_s": round(measured["cpu_s"], 2),
        "peak_rss_mib": round(measured["peak_rss_mib"]),
    }


async def drain_plain(records: list[rt.Record]) -> dict[str, Any]:
    seconds, cpu = await rt.run_plain(records)
    return {"events_per_s": round(len(records) / seconds), "seconds": round(seconds, 2), "cpu_s": round(cpu, 2)}


async def drain_debezium(
    conn: asyncpg.Connection, consumer: AIOKafkaConsumer, worker: ConnectWorker, events: int
) -> dict[str, Any]:
    """From the first commit of the backlog (inserted INSERT_CHUNK rows a transaction) until the
    topic holds every row."""
    since = await end_offsets(consumer)
    usage = Usage(worker.process)
    started = time.perf_counter()
    for begin in range(0, events, INSERT_CHUNK):
        await conn.execute(
            """INSERT INTO outbox (event_id, event_type, topic, key, value, headers)
               SELECT event_id, event_type, topic, key, value, headers FROM backlog WHERE id > $1 AND id <= $2
               ORDER BY id""",
            begin,
            begin + INSERT_CHUNK,
        )
        usage.tick()
    committed = time.perf_counter() - started
    done = await wait_for_records(consumer, since, events, usage)
    seconds = done - started
    return {
        "events_per_s": round(events / seconds),
        "seconds": round(seconds, 2),
        "insert_seconds": round(committed, 2),
    } | usage.result()


async def commit_steadily(conn: asyncpg.Connection, rate: int, seconds: float) -> dict[str, float]:
    """WRITER_BATCH rows a transaction, `rate` rows/s for `seconds`: each event id's commit time."""
    committed: dict[str, float] = {}
    total = int(rate * seconds)
    next_at = time.monotonic()
    for rows in rt.backlog(total, max(1, total // 10), chunk=WRITER_BATCH):
        columns = list(zip(*rows, strict=True))
        await conn.execute(INSERT_ROWS, *[list(c) for c in columns])
        now = time.time()
        committed.update((str(event_id), now) for event_id in columns[0])
        next_at += WRITER_BATCH / rate
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return committed


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49], 1),
        "p90_ms": round(cuts[89], 1),
        "p99_ms": round(cuts[98], 1),
        "max_ms": round(max(latencies_ms), 1),
        "events": len(latencies_ms),
    }


async def latency(conn: asyncpg.Connection, consumer: AIOKafkaConsumer, rate: int, seconds: float) -> dict[str, Any]:
    since = await end_offsets(consumer)
    committed = await commit_steadily(conn, rate, seconds)
    sent = await timestamps_of(since, set(committed))
    return percentiles([(sent[event_id] - at) * 1000 for event_id, at in committed.items()])


async def latency_builtin(
    conn: asyncpg.Connection, consumer: AIOKafkaConsumer, rate: int, seconds: float
) -> dict[str, Any]:
    await conn.execute("TRUNCATE outbox")
    child = await builtin_relay_process(int(rate * seconds))
    await asyncio.sleep(1)  # past its LISTEN and first poll
    result = await latency(conn, consumer, rate, seconds)
    await child.communicate()
    return result


async def register_debezium(conn: asyncpg.Connection, consumer: AIOKafkaConsumer, overrides: dict[str, str]) -> None:
    """(Re)register the connector with these settings, then wait until a row goes through it."""
    config = connectors.connector_config(SERVICE, rt.SCHEMA) | overrides
    await asyncio.to_thread(connectors.register, CONNECTOR, config)
    await asyncio.sleep(2)  # a config update restarts the task: not to be taken for running before it
    await asyncio.to_thread(connectors.wait_until_running, CONNECTOR, timeout=120)
    since = await end_offsets(consumer)
    (rows,) = rt.backlog(1, 1, chunk=1)
    await conn.execute(INSERT_ROWS, *[list(c) for c in zip(*rows, strict=True)])
    await wait_for_records(consumer, since, 1, None, timeout=120)


async def prepare_debezium() -> None:
    await asyncio.to_thread(connectors.prepare_database, SERVICE, rt.SCHEMA)  # as a service's: delete on insert
    admin = AIOKafkaAdminClient(**admin_client_config(rt.KAFKA), client_id="bench")
    await admin.start()
    try:
        await grant(admin, connect_acls((rt.TOPIC,)))
    finally:
        await admin.close()


def remove_debezium() -> None:
    if connectors._rest_answers():
        connectors.remove(CONNECTOR, connectors.slot_name(SERVICE))
    superuser_sql(
        f"""
        DROP PUBLICATION IF EXISTS {SERVICE}_outbox_pub;
        DROP SCHEMA IF EXISTS {rt.SCHEMA} CASCADE;
        SELECT 'DROP OWNED BY {SERVICE}_cdc' WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = '{SERVICE}_cdc') \\gexec
        DROP ROLE IF EXISTS {SERVICE}_cdc;
        """
    )


async def delete_topic() -> None:
    admin = AIOKafkaAdminClient(**admin_client_config(rt.KAFKA), client_id="bench")
    await admin.start()
    try:
        await admin.delete_topics([rt.TOPIC], timeout_ms=30_000)
    finally:
        await admin.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    configure_logging("bench", "bench", level="WARNING", fmt="console")
    dsn = asyncpg_dsn(rt.DATABASE_URL)
    print(f"setting up: schema {rt.SCHEMA}, topic {rt.TOPIC}, {args.events:,} StockReserved events")
    remove_debezium()  # what an interrupted run left
    rt.create_schema()
    await rt.create_tables(dsn)
    await rt.recreate_topic()
    conn = await asyncpg.connect(dsn, server_settings={"search_path": rt.SCHEMA})
    consumer = AIOKafkaConsumer(**admin_client_config(rt.KAFKA), enable_auto_commit=False)
    await consumer.start()
    # The worker's state topics and its principal's ACLs, before it starts: on a cluster that never
    # ran Connect it would otherwise stop at once (not authorized to read connect-offsets).
    await connectors.provision_kafka()
    worker = ConnectWorker()
    drain: dict[str, Any] = {}
    lat: dict[str, Any] = {}
    try:
        records, value_bytes = await rt.store_backlog(conn, args.events, args.orders)
        drain["builtin"] = await drain_builtin(conn, args.events)
        print(f"  drain builtin   {drain['builtin']}", flush=True)
        drain["plain"] = await drain_plain(records)
        print(f"  drain plain     {drain['plain']}", flush=True)
        del records
        lat["builtin"] = await latency_builtin(conn, consumer, args.rate, args.latency_seconds)
        print(f"  latency builtin {lat['builtin']}", flush=True)

        await prepare_debezium()
        # The Connect JVM's JIT warm-up (tens of CPU seconds) would fall on whichever variant runs
        # first: a drain nobody records goes before them (it showed 2,467 against 4,210 ev/s, the
        # faster settings first).
        await register_debezium(conn, consumer, {})
        print(f"  warm-up         {await drain_debezium(conn, consumer, worker, args.warmup_events)}", flush=True)
        variants = {"debezium": {}, "debezium_stock": STOCK} if args.stock else {"debezium": {}}
        for name, overrides in variants.items():
            await register_debezium(conn, consumer, overrides)
            drain[name] = await drain_debezium(conn, consumer, worker, args.events)
            print(f"  drain {name:<9} {drain[name]}", flush=True)
            lat[name] = await latency(conn, consumer, args.rate, args.latency_seconds)
            print(f"  latency {name:<7} {lat[name]}", flush=True)
    finally:
        await consumer.stop()
        await conn.close()
        remove_debezium()
        worker.stop()
        await delete_topic()

    plain = drain["plain"]["events_per_s"]
    return {
        "benchmark": "relay_compare",
        "command": "make bench  (.venv/bin/python bench/relay_compare.py)",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "events": args.events,
        "mean_value_bytes": round(value_bytes),
        "topic": f"{rt.TOPIC} ({rt.PARTITIONS} partitions, RF 3, min ISR 2)",
        "debezium_stock_settings": STOCK if args.stock else None,
        "debezium_warmup_events": args.warmup_events,
        "drain": drain,
        "ratio_to_plain": {name: round(d["events_per_s"] / plain, 3) for name, d in drain.items()},
        "latency": {"rate_per_s": args.rate, "seconds": args.latency_seconds, "writer_batch": WRITER_BATCH} | lat,
        "latency_source": "the record's CreateTime (its relay's producer, at send) - the writer's clock after COMMIT",
        "connect_worker": "started for the run" if worker.started else "the running one (RELAY=debezium)",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(result["drain"])
    left.bar(names, [result["drain"][n]["events_per_s"] for n in names], color="tab:blue")
    left.set(ylabel="events/s", title=f"Draining {result['events']:,} outbox rows")
    relays = [n for n in names if n in result["latency"]]
    x = range(len(relays))
    right.bar([i - 0.2 for i in x], [result["latency"][n]["p50_ms"] for n in relays], 0.4, label="p50")
    right.bar([i + 0.2 for i in x], [result["latency"][n]["p99_ms"] for n in relays], 0.4, label="p99")
    right.set_xticks(list(x), relays)
    right.set(
        ylabel="commit -> record (ms)",
        yscale="log",
        title=f"Latency at {result['latency']['rate_per_s']} rows/s",
    )
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def report(result: dict[str, Any]) -> None:
    print()
    print(f"Relays compared, {result['events']:,} events")
    print(f"  {'':<16}{'events/s':>10}{'ratio':>8}{'CPU s':>8}{'RSS MiB':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for name, d in result["drain"].items():
        lat = result["latency"].get(name, {})
        print(
            f"  {name:<16}{d['events_per_s']:>10,}{result['ratio_to_plain'][name]:>8.2f}{d['cpu_s']:>8}"
            f"{d.get('peak_rss_mib', '-'):>9}{lat.get('p50_ms', '-'):>9}{lat.get('p99_ms', '-'):>9}"
        )
    print(f"  results in {RESULTS.relative_to(REPO)} and {PLOT.relative_to(REPO)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=200, help="rows/s committed in the latency runs")
    parser.add_argument("--latency-seconds", type=float, default=30)
    parser.add_argument("--warmup-events", type=int, default=30_000, help="drained by Connect before the measured runs")
    parser.add_argument("--no-stock", dest="stock", action="store_false", help="skip the runs on Debezium's defaults")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON results and the plot")
    parser.add_argument("--child-relay", type=int, help=argparse.SUPPRESS)  # internal: the builtin relay's process
    arguments = parser.parse_args()
    if arguments.child_relay:
        uvloop.run(child_relay(arguments.child_relay))
        sys.exit(0)
    outcome = uvloop.run(main(arguments))
    if not arguments.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(outcome, indent=2) + "\n")
        plot(outcome, PLOT)
    report(outcome)
    sys.exit(0)
