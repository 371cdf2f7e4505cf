"""Saga throughput: open-loop load at fixed rates through the public API, measured from outside.

    make bench                                            (runs this after the relay benchmark)
    .venv/bin/python bench/saga_load.py                   sweep 25, 50, 100, 200, 400, ... until it saturates
    .venv/bin/python bench/saga_load.py --rates 20,40 --duration 30
    .venv/bin/python bench/saga_load.py --smoke           a few seconds at a low rate (make test runs it)

Against the running stack (`make up`). Per rate:
- Orders are sent on a fixed schedule (order i at start + i/rate), each in its own task, whatever
  the answers before it did: an open loop, so a slow system gets no break (no coordinated
  omission). POST latency is measured from the scheduled instant, not from when it left.
- 500 well-stocked SKUs, 1-3 lines an order, 10 % declined cards, 5 % cancelled by the customer
  shortly after, every POST with its own Idempotency-Key (a 5xx or a refused connection is sent
  again with the same key, and counted).
- A consumer of `order-events` (no group, from the end) timestamps every order's first terminal
  event (OrderConfirmed, OrderRejected, OrderCancelled) by its `occurredAt`: order -> terminal is
  that minus the order's scheduled POST instant.
- CPU seconds per order and peak RSS of every process (each broker, Postgres with all its
  backends, each service process) from psutil; this generator's own CPU apart.
- Consumer lag of the three services' groups at the end of the rate.
The sweep stops at the first rate the system does not hold (terminal/s below 90 % of offered, or
order -> terminal p99 above 5 s), then halves the gap between the highest rate held and that one,
`--refine` times while the gap is 10 orders/s or more (50 held and 100 not: then 75, then 62 or
88), so the ceiling is found to within a few orders/s. Then a sustained run at the highest rate
held, after which every invariant of the end-to-end tests is checked through the public APIs; a
run that breaks one is reported as 0 orders/s.

Results: bench/results/saga_load.json (and .png: throughput and latency against offered load,
next to the baseline in bench/results/saga_load_baseline.json, when there is one).
"""

import argparse
import asyncio
import json
import random
import resource
import subprocess
import sys
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from shared.events.topics import PARTITIONS
from shared.kafka.security import admin_client_config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "infra" / "scripts"))  # dev_token: the tokens customers and the admin send
from tests.e2e.invariants import assert_order_settled, assert_stock_conserved  # noqa: E402
from tests.e2e.storefront import Storefront, bearer  # noqa: E402

RESULTS = REPO / "bench" / "results"
ORDER_URL, INVENTORY_URL = "http://127.0.0.1:8001", "http://127.0.0.1:8003"
BOOTSTRAP = "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
GROUPS = ("order-service", "payment-service", "inventory-service")
SAGA_TOPICS = ("order-events", "payment-events", "inventory-events")
TERMINAL_EVENTS = {"OrderConfirmed", "OrderRejected", "OrderCancelled"}
SKUS, STOCK_PER_SKU = 500, 1_000_000
DECLINE_SHARE, CANCEL_SHARE = 0.10, 0.05
HOLDS_THROUGHPUT, HOLDS_P99_S = 0.9, 5.0
REFINE_MIN_GAP = 10.0  # orders/s between the highest rate held and the lowest not held
ADMIN = bearer("bench-admin", "admin")  # stocks the catalog; each customer sends its own token


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- processes --------------------------------------------------------------------------------------
class ProcessMeter:
    """CPU seconds and peak RSS of every process of the system, grouped by what it is."""

    def __init__(self) -> None:
        self.roots = self._discover()
        self._start: dict[str, float] = {}
        self.peak_rss: dict[str, float] = {}

    @staticmethod
    def _discover() -> dict[str, psutil.Process]:
        roots: dict[str, psutil.Process] = {}
        out = subprocess.run(
            [str(REPO / ".venv/bin/supervisorctl"), "-c", str(REPO / "infra/supervisord.conf"), "status"],
            capture_output=True,
            text=True,
            check=False,
            env={"REPO": str(REPO), "PATH": "/usr/bin:/bin"},
        ).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "RUNNING" and parts[2] == "pid":
                roots[parts[0].split(":")[1]] = psutil.Process(int(parts[3].rstrip(",")))
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            if cmd and cmd[0].endswith("/bin/postgres") and "/ecommerce" in " ".join(cmd):
                roots["postgres"] = proc
        return roots

    def _cpu(self, root: psutil.Process) -> float:
        """The root, its live descendants, and what its reaped children used (Postgres backends come
        and go: their CPU lands in the postmaster's children times when they exit)."""
        try:
            times = root.cpu_times()
            total = times.user + times.system + times.children_user + times.children_system
            for child in root.children(recursive=True):
                with suppress(psutil.Error):
                    child_times = child.cpu_times()
                    total += child_times.user + child_times.system
            return total
        except psutil.NoSuchProcess:
            return 0.0

    def _rss_mb(self, root: psutil.Process) -> float:
        with suppress(psutil.Error):
            return root.memory_info().rss / 2**20
        return 0.0

    def start(self) -> None:
        self._start = {name: self._cpu(proc) for name, proc in self.roots.items()}
        self.peak_rss = {}

    def sample_rss(self) -> None:
        for name, proc in self.roots.items():
            self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), self._rss_mb(proc))

    def cpu_seconds(self) -> dict[str, float]:
        return {name: self._cpu(proc) - self._start.get(name, 0.0) for name, proc in self.roots.items()}


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- terminal events ----------------------------------------------------------------------------------
class TerminalWatch:
    """Follows `order-events` from its end: when did each order first reach a terminal state?"""

    def __init__(self) -> None:
        self.terminal_at: dict[str, tuple[float, str]] = {}
        self._consumer = AIOKafkaConsumer(
            **admin_client_config(BOOTSTRAP), enable_auto_commit=False, fetch_max_wait_ms=100
        )
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()

    async def start(self) -> None:
        await self._consumer.start()
        # An unsubscribed consumer has no topic metadata yet: the partition count is the contract's.
        partitions = [TopicPartition("order-events", p) for p in range(PARTITIONS)]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers or ())
                    kind = headers.get("eventType", b"").decode()
                    if kind in TERMINAL_EVENTS:
                        order_id = headers["correlationId"].decode()
                        if order_id not in self.terminal_at:
                            occurred = datetime.fromisoformat(headers["occurredAt"].decode()).timestamp()
                            self.terminal_at[order_id] = (occurred, kind)
            self._progress.set()

    async def wait_for(self, order_ids: set[str], timeout: float) -> None:
        """Until every one of `order_ids` is terminal, or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not order_ids <= self.terminal_at.keys():
            self._progress.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), timeout=0.5)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self._consumer.stop()


# --- load -------------------------------------------------------------------------------------------
@dataclass
class Placed:
    scheduled: float  # wall-clock instant the POST was due
    latency: float | None = None  # scheduled instant -> 202 (None: never accepted)
    order_id: str | None = None
    retries: int = 0


@dataclass
class RateResult:
    offered: float
    duration_s: float
    placed: list[Placed] = field(default_factory=list)
    errors_5xx: int = 0
    connection_errors: int = 0
    unexpected: dict[str, int] = field(default_factory=dict)


class Load:
    def __init__(self, http: aiohttp.ClientSession, skus: list[str]) -> None:
        self._http = http
        self._skus = skus
        self._rng = random.Random(42)

    def _body(self) -> dict[str, Any]:
        lines = self._rng.sample(self._skus, self._rng.randint(1, 3))
        return {
            "customer_id": f"bench-{self._rng.randrange(10_000)}",
            "items": [{"sku": sku, "quantity": self._rng.randint(1, 3)} for sku in lines],
            "payment_token": "tok_chargeDeclined" if self._rng.random() < DECLINE_SHARE else "tok_visa",
        }

    async def run(self, rate: float, duration: float) -> RateResult:
        result = RateResult(offered=rate, duration_s=duration)
        count = max(1, int(rate * duration))
        loop = asyncio.get_running_loop()
        start_mono, start_wall = loop.time() + 0.2, time.time() + 0.2
        tasks = []
        for i in range(count):
            due = start_mono + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            placed = Placed(scheduled=start_wall + i / rate)
            result.placed.append(placed)
            cancel = self._rng.random() < CANCEL_SHARE
            tasks.append(asyncio.create_task(self._place(placed, self._body(), cancel, result)))
        await asyncio.gather(*tasks)
        return result

    async def _place(self, placed: Placed, body: dict[str, Any], cancel: bool, result: RateResult) -> None:
        key = str(uuid.uuid4())
        for attempt in range(20):
            try:
                headers = bearer(body["customer_id"], "customer") | {"Idempotency-Key": key}
                async with self._http.post(f"{ORDER_URL}/orders", json=body, headers=headers) as resp:
                    if resp.status == 202:
                        placed.order_id = (await resp.json())["order_id"]
                        placed.latency = time.time() - placed.scheduled
                        placed.retries = attempt
                        break
                    text = await resp.text()
                    if resp.status < 500:
                        reason = f"{resp.status} {text[:80]}"
                        result.unexpected[reason] = result.unexpected.get(reason, 0) + 1
                        return
                    result.errors_5xx += 1
            except (TimeoutError, aiohttp.ClientError):
                result.connection_errors += 1
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
        if cancel and placed.order_id:
            await asyncio.sleep(random.uniform(0.0, 0.3))
            try:
                customer = bearer(body["customer_id"], "customer")
                async with self._http.post(f"{ORDER_URL}/orders/{placed.order_id}/cancel", headers=customer) as resp:
                    await resp.read()  # 200, or 409 when the saga ended first: both are fine
            except (TimeoutError, aiohttp.ClientError):
                result.connection_errors += 1


# --- measurement of one rate ------------------------------------------------------------------------
async def consumer_lag() -> dict[str, int]:
    admin = AIOKafkaAdminClient(**admin_client_config(BOOTSTRAP))
    consumer = AIOKafkaConsumer(**admin_client_config(BOOTSTRAP))
    await admin.start()
    await consumer.start()
    try:
        lag: dict[str, int] = {}
        for group in GROUPS:
            committed = await admin.list_consumer_group_offsets(group)
            ends = await consumer.end_offsets([tp for tp in committed if tp.topic in SAGA_TOPICS])
            lag[group] = sum(max(0, ends[tp] - committed[tp].offset) for tp in ends)
        return lag
    finally:
        await consumer.stop()
        await admin.close()


async def measure_rate(
    load: Load, watch: TerminalWatch, meter: ProcessMeter, rate: float, duration: float, drain_s: float
) -> dict[str, Any]:
    meter.start()
    own_before = own_cpu_seconds()
    sampler = asyncio.create_task(_sample_rss_every_second(meter))
    result = await load.run(rate, duration)
    window_end = result.placed[-1].scheduled + 1 / rate
    lag = await consumer_lag()
    accepted = [p for p in result.placed if p.order_id]
    await watch.wait_for({p.order_id for p in accepted if p.order_id}, timeout=drain_s)
    sampler.cancel()
    cpu = meter.cpu_seconds()
    own = own_cpu_seconds() - own_before
    window_start = result.placed[0].scheduled
    terminal_in_window = sum(1 for at, _ in watch.terminal_at.values() if window_start <= at <= window_end)
    to_terminal = [watch.terminal_at[p.order_id][0] - p.scheduled for p in accepted if p.order_id in watch.terminal_at]
    post = [p.latency for p in accepted if p.latency is not None]
    n = max(1, len(accepted))
    row = {
        "offered_per_s": rate,
        "duration_s": duration,
        "accepted_per_s": round(len(accepted) / duration, 1),
        "post_p50_ms": _ms(percentile(post, 0.5)),
        "post_p99_ms": _ms(percentile(post, 0.99)),
        "terminal_per_s": round(terminal_in_window / duration, 1),
        "to_terminal_p50_ms": _ms(percentile(to_terminal, 0.5)),
        "to_terminal_p90_ms": _ms(percentile(to_terminal, 0.9)),
        "to_terminal_p99_ms": _ms(percentile(to_terminal, 0.99)),
        "not_terminal_after_drain": sum(1 for p in accepted if p.order_id not in watch.terminal_at),
        "lag_at_end": lag,
        "client_5xx": result.errors_5xx,
        "client_connection_errors": result.connection_errors,
        "client_unexpected": result.unexpected,
        "cpu_ms_per_order": {name: round(1000 * s / n, 2) for name, s in sorted(cpu.items())},
        "cpu_ms_per_order_total": round(1000 * sum(cpu.values()) / n, 2),
        "generator_cpu_ms_per_order": round(1000 * own / n, 2),
        "peak_rss_mb": {name: round(mb, 1) for name, mb in sorted(meter.peak_rss.items())},
    }
    row["holds"] = (
        row["terminal_per_s"] >= HOLDS_THROUGHPUT * rate
        and row["to_terminal_p99_ms"] is not None
        and row["to_terminal_p99_ms"] <= HOLDS_P99_S * 1000
        and row["not_terminal_after_drain"] == 0
    )
    row["_placed"] = accepted
    return row


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


async def _sample_rss_every_second(meter: ProcessMeter) -> None:
    while True:
        meter.sample_rss()
        await asyncio.sleep(1)


# --- invariants ---------------------------------------------------------------------------------------
async def check_invariants(skus: list[str], placed: list[Placed]) -> str | None:
    """The end-to-end tests' invariants over every order of the sustained run; None when all hold."""
    shop = Storefront.connect()
    try:
        gate = asyncio.Semaphore(32)
        orders: list[dict] = []

        async def settle(order_id: str) -> None:
            async with gate:
                order = await shop.order(order_id)
                orders.append(order)
                await assert_order_settled(shop, order, timeout=30)

        await asyncio.gather(*(settle(p.order_id) for p in placed if p.order_id))
        # The sustained run has SKUs of its own, so every order that touched them is in `orders`.
        await assert_stock_conserved(shop, dict.fromkeys(skus, STOCK_PER_SKU), orders)
    except AssertionError as exc:
        return f"{type(exc).__name__}: {str(exc)[:500]}"
    finally:
        await shop.close()
    return None


# --- setup, report ------------------------------------------------------------------------------------
async def stock_catalog(http: aiohttp.ClientSession, prefix: str) -> list[str]:
    """Fresh SKUs, so that the stock checks see only this run's orders."""
    skus = [f"B-{prefix}-{i:03d}" for i in range(SKUS)]
    gate = asyncio.Semaphore(16)

    async def put(sku: str) -> None:
        async with gate:
            body = {
                "name": f"Bench {sku}",
                "unit_price": 1000 + int(sku[-3:]) * 17,
                "currency": "EUR",
                "available": STOCK_PER_SKU,
                "reorder_level": 0,
            }
            async with http.put(f"{INVENTORY_URL}/products/{sku}", json=body, headers=ADMIN) as resp:
                assert resp.status in (200, 201), await resp.text()

    await asyncio.gather(*(put(sku) for sku in skus))
    return skus


def halfway_rate(rows: list[dict[str, Any]]) -> float | None:
    """The rate halfway between the highest held and the lowest not held above it, or None when
    there is no such pair or they are less than REFINE_MIN_GAP apart."""
    held = [r["offered_per_s"] for r in rows if r["holds"]]
    if not held:
        return None
    top = max(held)
    failed = [r["offered_per_s"] for r in rows if not r["holds"] and r["offered_per_s"] > top]
    if not failed or min(failed) - top < REFINE_MIN_GAP:
        return None
    return float(round((top + min(failed)) / 2))


def print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['offered_per_s']:>6} /s offered | accepted {row['accepted_per_s']:>6}/s | "
        f"POST p50/p99 {row['post_p50_ms']}/{row['post_p99_ms']} ms | terminal {row['terminal_per_s']:>6}/s | "
        f"to terminal p50/p90/p99 {row['to_terminal_p50_ms']}/{row['to_terminal_p90_ms']}/"
        f"{row['to_terminal_p99_ms']} ms | "
        f"CPU {row['cpu_ms_per_order_total']} ms/order (generator {row['generator_cpu_ms_per_order']}) | "
        f"lag {sum(row['lag_at_end'].values())} | {'holds' if row['holds'] else 'SATURATED'}",
        flush=True,
    )


def plot(result: dict[str, Any], baseline: dict[str, Any] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, data, style in (("baseline", baseline, "--o"), ("this run", result, "-o")):
        if not data:
            continue
        label = f"{label} {data['commit']}"
        rows = data["sweep"]
        offered = [r["offered_per_s"] for r in rows]
        left.plot(offered, [r["terminal_per_s"] for r in rows], style, label=f"terminal/s ({label})")
        right.plot(offered, [r["to_terminal_p50_ms"] or 0 for r in rows], style, label=f"p50 ({label})")
        right.plot(offered, [r["to_terminal_p99_ms"] or 0 for r in rows], style, label=f"p99 ({label})")
    top = max(r["offered_per_s"] for r in result["sweep"])
    left.plot([0, top], [0, top], ":", color="grey", label="offered")
    left.set(xlabel="offered orders/s", ylabel="orders reaching a terminal state /s", title="Throughput")
    right.set(xlabel="offered orders/s", ylabel="order -> terminal (ms)", title="Latency", yscale="log")
    left.legend()
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False)
    return out.stdout.strip()


def stack(command: str) -> None:
    subprocess.run(["bash", str(REPO / "infra/scripts/stack.sh"), command], check=True, cwd=REPO)


async def main(args: argparse.Namespace) -> int:
    if args.scale_out:
        stack("scale-out")  # before the meter looks for processes, so it measures the second ones too
    try:
        return await run(args)
    finally:
        if args.scale_out:
            stack("scale-in")


async def run(args: argparse.Namespace) -> int:
    run_id = uuid.uuid4().hex[:6]
    connector = aiohttp.TCPConnector(limit=1024, limit_per_host=1024)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        skus = await stock_catalog(http, f"{run_id}s")
        watch, meter, load = TerminalWatch(), ProcessMeter(), Load(http, skus)
        await watch.start()
        sweep: list[dict[str, Any]] = []

        async def sweep_at(rate: float) -> bool:
            """One rate of the sweep, recorded and printed; whether it held."""
            row = await measure_rate(load, watch, meter, rate, args.duration, args.drain)
            row.pop("_placed")
            sweep.append(row)
            print_row(row)
            return bool(row["holds"])

        try:
            for rate in args.rates:
                if not await sweep_at(rate):
                    break
            for _ in range(args.refine):
                halfway = halfway_rate(sweep)
                if halfway is None:
                    break
                await sweep_at(halfway)
            sweep.sort(key=lambda r: r["offered_per_s"])
            held = [r["offered_per_s"] for r in sweep if r["holds"]]
            rate = args.sustain_rate or (max(held) if held else None)
            sustained = None
            if rate and args.sustain:
                print(f"sustained run at {rate} orders/s for {args.sustain} s, then every invariant", flush=True)
                fresh = await stock_catalog(http, f"{run_id}S")
                row = await measure_rate(Load(http, fresh), watch, meter, rate, args.sustain, args.drain)
                placed = row.pop("_placed")
                print_row(row)
                violation = await check_invariants(fresh, placed)
                row["invariants"] = violation or "all hold"
                row["counted_orders_per_s"] = 0 if violation else row["terminal_per_s"]
                print(f"invariants: {row['invariants']}", flush=True)
                sustained = row
        finally:
            await watch.stop()
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "cpus": psutil.cpu_count(),
        "scaled_out": args.scale_out,
        "load_avg_at_end": [round(x, 2) for x in psutil.getloadavg()],
        "sweep": sweep,
        "sustained": sustained,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.output}")
    if args.plot:
        baseline_path = RESULTS / "saga_load_baseline.json"
        baseline = json.loads(baseline_path.read_text()) if baseline_path.exists() else None
        plot(result, baseline, args.output.with_suffix(".png"))
        print(f"plot: {args.output.with_suffix('.png')}")
    if sustained is not None and sustained["invariants"] != "all hold":
        return 1
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=[25, 50, 100, 200, 400, 800, 1600]
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per rate")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for stragglers after a rate")
    parser.add_argument(
        "--refine", type=int, default=2, help="runs that halve the gap between the highest rate held and the next"
    )
    parser.add_argument("--sustain", type=float, default=60.0, help="seconds of the sustained run (0: none)")
    parser.add_argument("--sustain-rate", type=float, help="rate of the sustained run (default: the highest held)")
    parser.add_argument("--output", type=Path, default=RESULTS / "saga_load.json")
    parser.add_argument("--no-plot", dest="plot", action="store_false")
    parser.add_argument("--smoke", action="store_true", help="a few seconds at a low rate, invariants checked")
    parser.add_argument(
        "--scale-out", action="store_true", help="with a second worker and a standby relay per service (make scale-out)"
    )
    args = parser.parse_args()
    if args.smoke:
        args.rates, args.sustain_rate, args.sustain, args.drain, args.plot = [], 5.0, 3.0, 60.0, False
    return args


if __name__ == "__main__":
    sys.exit(uvloop.run(main(parse_args())))
