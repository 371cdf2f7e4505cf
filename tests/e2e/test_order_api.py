"""The order API's contract: idempotent creation, listing, and clear 4xx answers to bad input."""

import uuid

import pytest

from .storefront import Storefront

GOOD = {"customer_id": "cust-api", "items": [{"sku": "SKU-1", "quantity": 1}], "payment_token": "tok_visa"}
AS_CUSTOMER = Storefront.as_customer(GOOD["customer_id"])


async def test_the_same_idempotency_key_and_body_return_the_same_order(shop: Storefront) -> None:
    key = str(uuid.uuid4())
    first = await shop.orders.post("/orders", json=GOOD, headers=AS_CUSTOMER | {"Idempotency-Key": key})
    again = await shop.orders.post("/orders", json=GOOD, headers=AS_CUSTOMER | {"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert first.json()["order_id"] == again.json()["order_id"]
    assert again.headers["location"] == f"/orders/{first.json()['order_id']}"
    # Only one order was created.
    events = await shop.events(first.json()["order_id"])
    assert [e["event_type"] for e in events].count("OrderCreated") == 1


async def test_the_same_idempotency_key_with_another_body_is_a_conflict(shop: Storefront) -> None:
    key = str(uuid.uuid4())
    assert (
        await shop.orders.post("/orders", json=GOOD, headers=AS_CUSTOMER | {"Idempotency-Key": key})
    ).status_code == 202
    other = {**GOOD, "items": [{"sku": "SKU-1", "quantity": 2}]}
    response = await shop.orders.post("/orders", json=other, headers=AS_CUSTOMER | {"Idempotency-Key": key})
    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({**GOOD, "items": []}, "no items"),
        ({**GOOD, "items": [{"sku": "SKU-1", "quantity": 0}]}, "quantity below 1"),
        ({**GOOD, "items": [{"sku": "SKU-1", "quantity": 10_000_000}]}, "absurd quantity"),
        ({**GOOD, "items": [{"sku": f"SKU-{i}", "quantity": 1} for i in range(51)]}, "too many lines"),
        (
            {**GOOD, "items": [{"sku": "SKU-1", "quantity": 6000}, {"sku": "SKU-1", "quantity": 5000}]},
            "a repeated SKU whose lines sum past the maximum",
        ),
        ({**GOOD, "coupon": "FREE"}, "unknown field"),
        ({**GOOD, "items": [{"sku": "SKU-1", "quantity": 1, "price": 1}]}, "a client price"),
        ({**GOOD, "customer_id": ""}, "empty customer"),
        ({**GOOD, "payment_token": ""}, "empty token"),
        ({**GOOD, "payment_token": None}, "missing token"),
        ({**GOOD, "items": [{"sku": "SKU-1", "quantity": "many"}]}, "quantity not a number"),
    ],
)
async def test_bad_order_input_is_a_422_with_a_reason(shop: Storefront, body: dict, reason: str) -> None:
    response = await shop.orders.post("/orders", json=body, headers=AS_CUSTOMER)
    assert response.status_code == 422, (reason, response.text)
    assert response.headers["content-type"] == "application/problem+json", reason
    assert response.json()["detail"], reason


async def test_malformed_json_is_a_422_not_a_500(shop: Storefront) -> None:
    response = await shop.orders.post(
        "/orders",
        content=b'{"customer_id": "c", "items": [',
        headers=AS_CUSTOMER | {"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"]


async def test_an_unknown_order_is_a_404(shop: Storefront) -> None:
    assert (await shop.orders.get(f"/orders/{uuid.uuid4()}")).status_code == 404
    assert (await shop.orders.get(f"/orders/{uuid.uuid4()}/events")).status_code == 404
    assert (await shop.cancel(str(uuid.uuid4()))).status_code == 404
    assert (await shop.orders.get("/orders/not-a-uuid")).status_code == 422


async def test_orders_are_listed_by_customer_newest_first_in_pages(shop: Storefront) -> None:
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    sku = await shop.stock_product(available=10)
    placed = [await shop.place_order([(sku, 1)], customer_id=customer) for _ in range(5)]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"customer_id": customer, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await shop.orders.get("/orders", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [order["order_id"] for order in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [order["order_id"] for order in reversed(placed)]
    assert (await shop.orders.get("/orders", params={"limit": 0})).status_code == 422
    assert (await shop.orders.get("/orders", params={"status": "NOPE"})).status_code == 422


async def test_the_catalog_and_payment_apis_answer_bad_input_with_4xx(shop: Storefront) -> None:
    bad_product = {"name": "x", "unit_price": 9.99, "currency": "EUR", "available": 1, "reorder_level": 0}
    assert (await shop.inventory.put("/products/SKU-X", json=bad_product)).status_code == 422
    lowercase = {**bad_product, "unit_price": 999, "currency": "eur"}
    assert (await shop.inventory.put("/products/SKU-X", json=lowercase)).status_code == 422
    assert (
        await shop.inventory.post(f"/products/NOPE-{uuid.uuid4().hex[:6]}/restock", json={"quantity": 1})
    ).status_code == 404
    sku = await shop.stock_product(available=1)
    assert (await shop.inventory.post(f"/products/{sku}/restock", json={"quantity": 0})).status_code == 422
    restocked = await shop.inventory.post(f"/products/{sku}/restock", json={"quantity": 4})
    assert restocked.status_code == 200 and restocked.json()["available"] == 5
    assert (await shop.payments.get(f"/payments/{uuid.uuid4()}")).status_code == 404
    assert (await shop.inventory.get(f"/reservations/{uuid.uuid4()}")).status_code == 404
