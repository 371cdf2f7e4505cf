"""The order's event history is the source of truth: audit trail, time travel, projection rebuilds."""

import asyncio
import subprocess
from datetime import datetime, timedelta

from .conftest import REPO
from .storefront import Storefront


async def test_the_history_of_a_confirmed_order_tells_its_whole_story(shop: Storefront) -> None:
    sku = await shop.stock_product(available=5, unit_price=1234)
    order = await shop.wait_until_terminal((await shop.place_order([(sku, 2)]))["order_id"])

    events = await shop.events(order["order_id"])
    assert [(e["version"], e["event_type"]) for e in events] == [
        (1, "OrderCreated"),
        (2, "OrderUpdated"),
        (3, "OrderConfirmed"),
    ]
    times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
    assert times == sorted(times)
    assert events[1]["data"]["total_amount"] == 2468
    assert events[2]["data"]["amount"] == 2468
    assert order["version"] == 3


async def test_time_travel_returns_the_order_as_it_was_at_a_version_or_a_moment(shop: Storefront) -> None:
    sku = await shop.stock_product(available=5, unit_price=700)
    order = await shop.wait_until_terminal((await shop.place_order([(sku, 1)]))["order_id"])
    order_id = order["order_id"]
    events = await shop.events(order_id)

    first = await shop.order(order_id, version=1)
    assert first["status"] == "PENDING" and first["version"] == 1 and first["total_amount"] is None
    second = await shop.order(order_id, version=2)
    assert second["status"] == "AWAITING_PAYMENT" and second["total_amount"] == 700
    assert await shop.order(order_id, version=3) == order

    created_at = events[0]["occurred_at"]
    assert (await shop.order(order_id, as_of=created_at))["status"] == "PENDING"
    assert (await shop.order(order_id, as_of=events[-1]["occurred_at"]))["status"] == "CONFIRMED"
    before = (datetime.fromisoformat(created_at) - timedelta(seconds=1)).isoformat()
    assert (await shop.orders.get(f"/orders/{order_id}", params={"as_of": before})).status_code == 404
    both = await shop.orders.get(f"/orders/{order_id}", params={"as_of": created_at, "version": 1})
    assert both.status_code == 422


async def test_the_projection_rebuilt_from_the_event_store_equals_the_live_one(shop: Storefront) -> None:
    sku = await shop.stock_product(available=5)
    await shop.wait_until_terminal((await shop.place_order([(sku, 1)]))["order_id"])
    result = await _rebuild("store")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "equal" in result.stdout


async def test_the_projection_rebuilt_from_the_order_events_topic_equals_the_live_one(shop: Storefront) -> None:
    sku = await shop.stock_product(available=5)
    order = await shop.wait_until_terminal((await shop.place_order([(sku, 1)]))["order_id"])
    assert order["status"] == "CONFIRMED"
    result = await _rebuild("topic")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "equal" in result.stdout


async def _rebuild(source: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [str(REPO / ".venv/bin/order-rebuild"), "--from", source],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
