"""A broker killed under load makes the running Prometheus (`make up`: 127.0.0.1:9090) fire the
UnderReplicatedPartitions alert, and bringing it back resolves it; every order placed meanwhile
still ends its saga.

The broker is SIGKILLed, as a crash would, and kept down (`supervisorctl stop` right after, so that
supervisord does not restart it at once) for as long as the alert takes to fire: the rule's `for:`
(1 min) plus a scrape and an evaluation. The whole test takes about two minutes.
"""

import asyncio
import time

import httpx
import pytest

from .faults import ctl, program_state, utc_now, wait_in_every_isr
from .storefront import Storefront, eventually

pytestmark = pytest.mark.timeout(420)

PROMETHEUS = "http://127.0.0.1:9090"
ALERT = "UnderReplicatedPartitions"
TRICKLE_INTERVAL_S = 0.5  # two orders a second: load, not a benchmark


async def prometheus(path: str, **params: str) -> dict:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{PROMETHEUS}/api/v1/{path}", params=params)
    response.raise_for_status()
    return response.json()["data"]


async def alert_state(name: str) -> str:
    """'firing', 'pending' or 'inactive'."""
    states = {
        alert["state"] for alert in (await prometheus("alerts"))["alerts"] if alert["labels"]["alertname"] == name
    }
    return "firing" if "firing" in states else "pending" if "pending" in states else "inactive"


async def broker_that_is_not_the_controller() -> int:
    """A broker whose loss costs no controller election (the metric of its JMX exporter says which)."""
    result = (await prometheus("query", query="kafka_controller_active_controller_count == 0"))["result"]
    assert result, "no broker reports itself as a follower controller: are the brokers' exporters scraped?"
    return int(sorted(sample["metric"]["instance"] for sample in result)[0].rsplit(":", 1)[1]) - 9200


async def place_orders(shop: Storefront, sku: str, stop: asyncio.Event, placed: list[dict]) -> None:
    while not stop.is_set():
        placed.append(await shop.place_order([(sku, 1)]))
        await asyncio.sleep(TRICKLE_INTERVAL_S)


async def test_a_killed_broker_fires_the_under_replicated_partitions_alert_until_it_is_back(shop: Storefront):
    assert await alert_state(ALERT) == "inactive", "the cluster is under-replicated before the test"
    node = await broker_that_is_not_the_controller()
    program = f"kafka:kafka-{node}"
    sku = await shop.stock_product(available=10_000)
    stop, placed = asyncio.Event(), []
    trickle = asyncio.create_task(place_orders(shop, sku, stop, placed))
    try:
        await asyncio.sleep(2)  # the load is on before the fault
        killed_at = time.monotonic()
        print(f"{utc_now()}   SIGKILL broker {node}")
        await ctl("signal", "KILL", program)
        await ctl("stop", program)  # down until started again, not restarted by supervisord at once

        await eventually(lambda: _is(ALERT, "firing"), timeout=150, what=f"{ALERT} firing", tolerate=(httpx.HTTPError,))
        fired_after = time.monotonic() - killed_at
        print(f"{utc_now()}   {ALERT} firing {fired_after:.0f} s after the kill")

        started_at = time.monotonic()
        await ctl("start", program)
        await eventually(lambda: _is(ALERT, "inactive"), timeout=120, what=f"{ALERT} resolved")
        print(f"{utc_now()}   {ALERT} resolved {time.monotonic() - started_at:.0f} s after the broker started")
    finally:
        stop.set()
        await trickle
        if (await program_state(program))[0] != "RUNNING":
            await ctl("start", program)
        await wait_in_every_isr((node,), timeout=120)

    assert fired_after < 150
    assert len(placed) > 20, "the load placed too few orders to count as load"
    for order in placed:
        assert (await shop.wait_until_terminal(order["order_id"], timeout=90))["status"] == "CONFIRMED"


async def _is(name: str, state: str) -> bool:
    return await alert_state(name) == state
