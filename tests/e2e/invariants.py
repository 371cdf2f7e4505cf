"""The invariants of docs/architecture.md, checked through the public APIs once the compensations have settled.

- CONFIRMED: exactly one charge of the order's total, no refund, its reservation sold.
- CANCELLED or REJECTED: net money zero, no stock held (released or never reserved).
- Per SKU: initial stock = available + reserved + sold, nothing left reserved, sold = confirmed demand.
- No side effect twice: every kind of order event at most once (OrderCreated exactly once), and
  the last status event is the order's status.
"""

import asyncio
from collections import Counter

from .storefront import Storefront, eventually

SETTLED_PAYMENT = {
    "CONFIRMED": {"CHARGED"},
    "CANCELLED": {"VOIDED", "DECLINED", "REFUNDED"},
    "REJECTED": {"AWAITING_DETAILS", "VOIDED"},
}
SETTLED_RESERVATION = {
    "CONFIRMED": {"SOLD"},
    "CANCELLED": {"RELEASED", "FAILED"},
    "REJECTED": {"FAILED"},
}
STATUS_OF_EVENT = {"OrderConfirmed": "CONFIRMED", "OrderRejected": "REJECTED", "OrderCancelled": "CANCELLED"}


async def assert_order_settled(shop: Storefront, order: dict, timeout: float = 60) -> tuple[dict, dict]:
    """Wait until payment and inventory reached the state the order's status implies; check money."""
    status = order["status"]
    order_id = order["order_id"]

    async def payment_settled() -> dict | None:
        payment = await shop.payment(order_id)
        return payment if payment and payment["status"] in SETTLED_PAYMENT[status] else None

    async def reservation_settled() -> dict | None:
        reservation = await shop.reservation(order_id)
        return reservation if reservation and reservation["status"] in SETTLED_RESERVATION[status] else None

    payment = await eventually(payment_settled, timeout=timeout, what=f"payment of {status} order {order_id}")
    reservation = await eventually(
        reservation_settled, timeout=timeout, what=f"reservation of {status} order {order_id}"
    )
    if status == "CONFIRMED":
        # The payment's answer may overtake the reservation (two topics, no order between them): the
        # order is then CONFIRMED before the StockReserved that prices it has arrived.
        async def priced() -> dict | None:
            current = await shop.order(order_id)
            return current if current["total_amount"] is not None else None

        order = await eventually(priced, timeout=timeout, what=f"prices of confirmed order {order_id}")
        assert payment["amount"] == order["total_amount"], (payment, order)
        assert payment["refunded_at"] is None
        assert order["payment_id"] == payment["payment_id"]
    else:
        # Net money zero: never charged, or charged and refunded in full.
        assert (payment["charged_at"] is None) or (payment["refunded_at"] is not None), payment

    events = await shop.events(order_id)
    kinds = Counter(event["event_type"] for event in events)
    assert kinds["OrderCreated"] == 1, kinds
    assert max(kinds.values()) == 1, kinds
    last_status_event = [event["event_type"] for event in events if event["event_type"] in STATUS_OF_EVENT][-1]
    assert STATUS_OF_EVENT[last_status_event] == status, (kinds, status)
    assert [event["version"] for event in events] == list(range(1, len(events) + 1))
    return payment, reservation


async def assert_orders_settled(shop: Storefront, orders: list[dict], *, timeout: float, concurrency: int = 16) -> None:
    """`assert_order_settled` for many orders, a bounded number at a time (thousands of orders must
    not become thousands of simultaneous requests)."""
    gate = asyncio.Semaphore(concurrency)

    async def check(order: dict) -> None:
        async with gate:
            await assert_order_settled(shop, order, timeout=timeout)

    await asyncio.gather(*(check(order) for order in orders))


async def stock_settled(shop: Storefront, initial: dict[str, int]) -> bool:
    """Whether every SKU holds nothing reserved and accounts for all its stock: a probe for `eventually`."""
    for sku, stock in initial.items():
        product = await shop.product(sku)
        if product["reserved"] or product["available"] + product["sold"] != stock:
            return False
    return True


async def assert_stock_conserved(shop: Storefront, initial: dict[str, int], orders: list[dict]) -> None:
    """Per SKU: nothing held, initial = available + sold, sold = what confirmed orders bought."""
    sold_to_confirmed: Counter[str] = Counter()
    for order in orders:
        if order["status"] == "CONFIRMED":
            for item in order["items"]:
                sold_to_confirmed[item["sku"]] += item["quantity"]
    for sku, stock in initial.items():
        product = await shop.product(sku)
        assert product["available"] + product["reserved"] + product["sold"] == stock, product
        assert product["reserved"] == 0, product
        assert product["sold"] == sold_to_confirmed[sku], (product, sold_to_confirmed[sku])
