"""Many customers at once over a few scarce products: every invariant still holds."""

import asyncio
import random
import time

from .invariants import assert_order_settled, assert_stock_conserved
from .storefront import Storefront

ORDERS = 200
CLIENTS = 20
TOKENS = ["tok_visa"] * 7 + ["tok_chargeDeclined"] * 2 + ["tok_mastercard"]


async def test_two_hundred_concurrent_orders_keep_every_invariant(shop: Storefront) -> None:
    rng = random.Random(20261126)
    stock = {
        await shop.stock_product(available=available, unit_price=price): available
        for available, price in ((60, 1500), (40, 2500), (25, 999), (10, 12000))
    }
    skus = list(stock)
    carts = [[(sku, rng.randint(1, 3)) for sku in rng.sample(skus, rng.randint(1, 3))] for _ in range(ORDERS)]
    tokens = [rng.choice(TOKENS) for _ in range(ORDERS)]
    to_cancel = set(rng.sample(range(ORDERS), ORDERS // 10))  # some customers change their mind

    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(ORDERS):
        queue.put_nowait(index)
    placed: dict[int, dict] = {}

    async def customer() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            order = await shop.place_order(carts[index], token=tokens[index])
            placed[index] = order
            if index in to_cancel:
                response = await shop.cancel(order["order_id"])
                assert response.status_code in (202, 409), response.text

    started = time.monotonic()
    await asyncio.gather(*(customer() for _ in range(CLIENTS)))
    orders = await asyncio.gather(
        *(shop.wait_until_terminal(order["order_id"], timeout=180) for order in placed.values())
    )
    elapsed = time.monotonic() - started
    print(f"\n{ORDERS} orders from {CLIENTS} concurrent clients: first POST to last terminal state {elapsed:.1f}s")

    statuses = {status: sum(o["status"] == status for o in orders) for status in ("CONFIRMED", "REJECTED", "CANCELLED")}
    print(f"outcomes: {statuses}")
    assert sum(statuses.values()) == ORDERS
    assert statuses["CONFIRMED"] > 0 and statuses["REJECTED"] > 0 and statuses["CANCELLED"] > 0

    for order in orders:
        await assert_order_settled(shop, order, timeout=120)
    await assert_stock_conserved(shop, stock, orders)
