"""Every path of the order saga, over HTTP against the running system."""

import asyncio
import random

import httpx

from .conftest import supervisorctl
from .invariants import assert_order_settled, assert_stock_conserved
from .storefront import Storefront, eventually


async def test_an_order_with_stock_and_a_good_card_is_confirmed_and_charged_once(shop: Storefront) -> None:
    keyboard = await shop.stock_product(available=10, unit_price=8999)
    mouse = await shop.stock_product(available=10, unit_price=2499)

    placed = await shop.place_order([(keyboard, 1), (mouse, 2)], token="tok_visa")
    assert placed["status"] == "PENDING"
    assert placed["total_amount"] is None  # prices come from the catalog, not from the client

    order = await shop.wait_until_terminal(placed["order_id"])
    assert order["status"] == "CONFIRMED"
    assert order["total_amount"] == 8999 + 2 * 2499
    assert order["currency"] == "EUR"
    assert {item["sku"]: item["unit_price"] for item in order["items"]} == {keyboard: 8999, mouse: 2499}

    payment, reservation = await assert_order_settled(shop, order)
    assert payment["status"] == "CHARGED"
    assert reservation["status"] == "SOLD"
    await assert_stock_conserved(shop, {keyboard: 10, mouse: 10}, [order])
    # OrderUpdated (the prices) usually comes before OrderConfirmed, after it when the payment's
    # answer overtook the reservation.
    kinds = [e["event_type"] for e in await shop.events(order["order_id"])]
    assert kinds[0] == "OrderCreated" and sorted(kinds[1:]) == ["OrderConfirmed", "OrderUpdated"], kinds


async def test_an_order_beyond_the_stock_is_rejected_and_holds_nothing(shop: Storefront) -> None:
    plenty = await shop.stock_product(available=10)
    scarce = await shop.stock_product(available=2)

    placed = await shop.place_order([(plenty, 1), (scarce, 3)])
    order = await shop.wait_until_terminal(placed["order_id"])

    assert order["status"] == "REJECTED"
    assert scarce in order["rejection_reason"]
    payment, reservation = await assert_order_settled(shop, order)
    assert payment["charged_at"] is None
    assert reservation["failures"] == [{"sku": scarce, "requested": 3, "available": 2, "reason": "insufficient_stock"}]
    # All-or-nothing: the line that could have been reserved was not.
    assert (await shop.product(plenty))["available"] == 10
    await assert_stock_conserved(shop, {plenty: 10, scarce: 2}, [order])


async def test_an_order_for_an_unknown_product_is_rejected(shop: Storefront) -> None:
    placed = await shop.place_order([("NO-SUCH-SKU-e2e", 1)])
    order = await shop.wait_until_terminal(placed["order_id"])
    assert order["status"] == "REJECTED"
    assert "unknown_sku" in order["rejection_reason"]


async def test_a_declined_card_cancels_the_order_and_releases_its_stock(shop: Storefront) -> None:
    sku = await shop.stock_product(available=5)

    placed = await shop.place_order([(sku, 2)], token="tok_chargeDeclined")
    order = await shop.wait_until_terminal(placed["order_id"])

    assert order["status"] == "CANCELLED"
    assert order["cancellation_reason"] == "payment_failed"
    payment, reservation = await assert_order_settled(shop, order)
    assert payment["status"] == "DECLINED"
    assert payment["failure_reason"] == "card_declined"
    assert reservation["status"] == "RELEASED"
    await assert_stock_conserved(shop, {sku: 5}, [order])


async def test_an_order_cancelled_while_awaiting_payment_ends_with_no_money_taken(shop: Storefront) -> None:
    """The payment worker is down, so the order waits for payment; the customer cancels meanwhile.
    When the worker comes back, the cancellation (order-events) and the reservation
    (inventory-events) wait in different topics, whose order relative to each other is not defined:
    either it sees the cancellation first and never charges (VOIDED), or it charges and then refunds
    in full (REFUNDED). Either way no money is kept and no stock is held."""
    sku = await shop.stock_product(available=5)
    supervisorctl("stop", "services:payment-worker")
    try:
        placed = await shop.place_order([(sku, 1)], token="tok_visa")
        await shop.wait_for_status(placed["order_id"], "AWAITING_PAYMENT")
        response = await shop.cancel(placed["order_id"])
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "CANCELLED"
    finally:
        supervisorctl("start", "services:payment-worker")

    order = await shop.order(placed["order_id"])
    assert order["cancellation_reason"] == "customer_request"
    payment, reservation = await assert_order_settled(shop, order)
    assert payment["status"] in {"VOIDED", "REFUNDED"}
    assert reservation["status"] == "RELEASED"
    await assert_stock_conserved(shop, {sku: 5}, [order])
    # The order stays cancelled whatever the payment service did meanwhile.
    assert (await shop.order(placed["order_id"]))["status"] == "CANCELLED"


async def test_cancelling_a_confirmed_order_refunds_the_charge_and_returns_the_stock(shop: Storefront) -> None:
    sku = await shop.stock_product(available=3, unit_price=500)
    placed = await shop.place_order([(sku, 2)])
    confirmed = await shop.wait_for_status(placed["order_id"], "CONFIRMED")
    await assert_order_settled(shop, confirmed)
    assert (await shop.product(sku))["sold"] == 2

    response = await shop.cancel(placed["order_id"])
    assert response.status_code == 202, response.text

    order = await shop.order(placed["order_id"])
    assert order["status"] == "CANCELLED"
    payment, reservation = await assert_order_settled(shop, order)
    assert payment["status"] == "REFUNDED"
    assert payment["amount"] == 1000
    assert reservation["status"] == "RELEASED"
    await assert_stock_conserved(shop, {sku: 3}, [order])
    assert (await shop.product(sku))["available"] == 3


async def test_a_cancel_racing_the_payment_leaves_no_money_taken_and_no_stock_held(shop: Storefront) -> None:
    """Cancel at once, while reservation and payment are in flight: whichever wins, the end state
    is CANCELLED with the money returned (voided or refunded) and the stock released."""
    sku = await shop.stock_product(available=40)

    async def place_then_cancel(delay: float) -> tuple[dict, httpx.Response]:
        order = await shop.place_order([(sku, 1)])
        await asyncio.sleep(delay)  # spreads the cancels over the saga's steps, not a synchronisation
        return order, await shop.cancel(order["order_id"])

    results = await asyncio.gather(*(place_then_cancel(random.uniform(0, 0.4)) for _ in range(20)))
    placed = [order for order, _ in results]
    responses = [response for _, response in results]
    for response in responses:
        # 409 only if the payment had already failed, which tok_visa never does.
        assert response.status_code == 202, response.text

    orders = [await shop.wait_until_terminal(order["order_id"]) for order in placed]
    assert {order["status"] for order in orders} == {"CANCELLED"}
    outcomes = set()
    for order in orders:
        payment, reservation = await assert_order_settled(shop, order)
        outcomes.add(payment["status"])
        assert reservation["status"] == "RELEASED"
    assert outcomes <= {"VOIDED", "REFUNDED"}
    await assert_stock_conserved(shop, {sku: 40}, orders)


async def test_cancelling_a_cancelled_or_rejected_order_is_a_conflict(shop: Storefront) -> None:
    sku = await shop.stock_product(available=1)
    rejected = await shop.wait_until_terminal((await shop.place_order([(sku, 2)]))["order_id"])
    assert rejected["status"] == "REJECTED"
    response = await shop.cancel(rejected["order_id"])
    assert response.status_code == 409
    assert "REJECTED" in response.json()["detail"]

    declined = await shop.wait_until_terminal(
        (await shop.place_order([(sku, 1)], token="tok_chargeDeclined"))["order_id"]
    )
    assert declined["status"] == "CANCELLED"
    assert (await shop.cancel(declined["order_id"])).status_code == 409


async def test_a_low_stock_alert_does_not_disturb_the_saga(shop: Storefront) -> None:
    sku = await shop.stock_product(available=5, reorder_level=4)
    order = await shop.wait_until_terminal((await shop.place_order([(sku, 2)]))["order_id"])
    assert order["status"] == "CONFIRMED"
    product = await eventually(lambda: _sold(shop, sku, 2), what="stock sold")
    assert product["available"] == 3


async def _sold(shop: Storefront, sku: str, quantity: int) -> dict | None:
    product = await shop.product(sku)
    return product if product["sold"] == quantity else None
