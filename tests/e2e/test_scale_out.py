"""Scaled out (`make scale-out`): a second worker in each service's consumer group and a standby relay
per service. Both workers of every service handle a share of the partitions, a killed worker's
partitions move to the other one, a killed publishing relay's standby takes over, and every saga
still ends with every invariant holding."""

import asyncio
import random

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .faults import ctl, program_states, sigkill
from .invariants import assert_orders_settled, assert_stock_conserved
from .storefront import Storefront, eventually

pytestmark = pytest.mark.timeout(300)

SERVICES = ("order", "payment", "inventory")
# Where each process serves /metrics (shared.settings; the second instances' ports are in supervisord.conf).
WORKER_PORTS = {"order": (9112, 9114), "payment": (9122, 9124), "inventory": (9132, 9134)}
RELAY_PORTS = {"order": (9111, 9113), "payment": (9121, 9123), "inventory": (9131, 9133)}
SCALED = [f"scale-out:{svc}-{role}-2" for svc in SERVICES for role in ("relay", "worker")]


async def metric(port: int, name: str, **labels: str) -> float:
    """The sum of a metric's samples with these labels on a process's /metrics (0 if it has none)."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def processed(port: int) -> float:
    return await metric(port, "consumer_events_total", outcome="processed")


async def place(shop: Storefront, skus: list[str], count: int) -> list[dict]:
    rng = random.Random()
    return await asyncio.gather(
        *(
            shop.place_order(
                [(sku, 1) for sku in rng.sample(skus, 2)],
                token="tok_chargeDeclined" if n % 10 == 0 else "tok_visa",
            )
            for n in range(count)
        )
    )


async def settled(shop: Storefront, placed: list[dict]) -> list[dict]:
    async def final(order: dict) -> dict:
        return await eventually(
            lambda: _terminal(shop, order["order_id"]), timeout=90, what=f"order {order['order_id']} terminal"
        )

    return list(await asyncio.gather(*(final(order) for order in placed)))


async def _terminal(shop: Storefront, order_id: str) -> dict | None:
    order = await shop.order(order_id)
    return order if order["status"] in ("CONFIRMED", "REJECTED", "CANCELLED") else None


@pytest.fixture
async def scaled_out():
    await ctl("update", "scale-out")  # a supervisord started before the group existed learns it
    await ctl("start", *SCALED)
    await eventually(lambda: _all_running(SCALED), timeout=60, what="the second workers and the standby relays to run")
    second_ports = [WORKER_PORTS[svc][1] for svc in SERVICES] + [RELAY_PORTS[svc][1] for svc in SERVICES]
    for port in second_ports:  # serving metrics: started, not only spawned (imports take seconds on a busy box)
        await eventually(
            lambda port=port: metric(port, "process_start_time_seconds"),
            timeout=60,
            what=f"the process on {port} to serve metrics",
            tolerate=(httpx.HTTPError,),
        )
    # Every worker of every service holding partitions: the second ones have joined their groups and
    # the rebalance is over, so the orders placed next are shared between both.
    for port in (port for svc in SERVICES for port in WORKER_PORTS[svc]):
        await eventually(
            lambda port=port: metric(port, "consumer_assigned_partitions"),
            timeout=60,
            what=f"the worker on {port} to hold partitions",
            tolerate=(httpx.HTTPError,),
        )
    try:
        yield
    finally:
        await ctl("stop", *SCALED)


async def _all_running(programs: list[str]) -> bool:
    return all(state == "RUNNING" for state, _ in (await program_states(*programs)).values())


async def test_two_workers_per_service_share_the_partitions_survive_a_kill_and_every_saga_completes(shop, scaled_out):
    stock = 10_000
    skus = [await shop.stock_product(available=stock) for _ in range(6)]
    before = {svc: [await processed(port) for port in WORKER_PORTS[svc]] for svc in SERVICES}

    orders = await settled(shop, await place(shop, skus, 60))
    after = {svc: [await processed(port) for port in WORKER_PORTS[svc]] for svc in SERVICES}
    for svc in SERVICES:
        first, second = (a - b for a, b in zip(after[svc], before[svc], strict=True))
        assert first > 0 and second > 0, f"{svc}: both workers handle events ({first}, {second})"

    # A worker killed under load: its partitions go to the other member, nothing is lost or doubled.
    placing = asyncio.create_task(place(shop, skus, 60))
    await sigkill("scale-out:inventory-worker-2")
    orders += await settled(shop, await placing)

    # The publishing relay killed: the standby publishes once the first relay's lock is gone.
    for svc in SERVICES:
        leaders = [await metric(port, "relay_is_leader") for port in RELAY_PORTS[svc]]
        assert sorted(leaders) == [0.0, 1.0], f"{svc}: one relay publishes, one stands by ({leaders})"
    first_leads = await _leads(RELAY_PORTS["payment"][0])
    leader, standby = ("services:payment-relay", 1) if first_leads else ("scale-out:payment-relay-2", 0)
    await ctl("stop", leader)
    try:
        await eventually(
            lambda: _leads(RELAY_PORTS["payment"][standby]), timeout=30, what="the standby payment relay to publish"
        )
        orders += await settled(shop, await place(shop, skus, 30))
    finally:
        await ctl("start", leader)

    await assert_orders_settled(shop, orders, timeout=60)
    await assert_stock_conserved(shop, dict.fromkeys(skus, stock), orders)


async def _leads(port: int) -> bool:
    return await metric(port, "relay_is_leader") == 1.0
