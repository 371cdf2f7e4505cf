"""The order HTTP API, in process, against the real Postgres."""

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from shared.events import Envelope, PricedLine, StockReserved

pytestmark = pytest.mark.infra


def body(customer: str, *lines: tuple[str, int], token: str = "tok_visa") -> dict:
    return {
        "customer_id": customer,
        "items": [{"sku": sku, "quantity": quantity} for sku, quantity in lines or [("SKU-1", 1)]],
        "payment_token": token,
    }


async def test_placing_an_order_answers_202_with_the_pending_order_and_its_location(api, customer):
    response = await api.post("/orders", json=body(customer, ("SKU-1", 2), ("SKU-2", 1)))

    assert response.status_code == 202, response.text
    order = response.json()
    assert response.headers["location"] == f"/orders/{order['order_id']}"
    assert order["status"] == "PENDING" and order["version"] == 1 and order["customer_id"] == customer
    assert order["items"] == [
        {"sku": "SKU-1", "quantity": 2, "unit_price": None},
        {"sku": "SKU-2", "quantity": 1, "unit_price": None},
    ]
    for field in ("total_amount", "currency", "cancellation_reason", "rejection_reason", "payment_id"):
        assert order[field] is None
    assert (await api.get(response.headers["location"])).json() == order


async def test_an_idempotency_key_replays_the_same_order_and_refuses_another_body(api, customer):
    key = str(uuid.uuid4())
    headers = {"Idempotency-Key": key}

    answers = await asyncio.gather(*(api.post("/orders", json=body(customer), headers=headers) for _ in range(5)))
    other = await api.post("/orders", json=body(customer, ("SKU-1", 2)), headers=headers)

    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["order_id"] for a in answers}) == 1
    assert other.status_code == 409 and key in other.json()["detail"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"items": []}, "items"),
        ({"items": [{"sku": "SKU-1", "quantity": 0}]}, "quantity"),
        ({"items": [{"sku": "SKU-1", "quantity": 10_001}]}, "quantity"),
        ({"items": [{"sku": f"SKU-{i}", "quantity": 1} for i in range(51)]}, "items"),
        ({"items": [{"sku": "SKU-1", "quantity": 6000}, {"sku": "SKU-1", "quantity": 5000}]}, "10000"),
        ({"coupon": "FREE"}, "coupon"),
        ({"items": [{"sku": "SKU-1", "quantity": 1, "unit_price": 1}]}, "unit_price"),
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "   "}, "customer_id: must not be blank"),
        ({"customer_id": "a\u0000b"}, "NUL character"),
        ({"payment_token": ""}, "payment_token"),
        ({"items": [{"sku": "no spaces please", "quantity": 1}]}, "sku"),
    ],
)
async def test_bad_input_is_a_422_that_says_what_is_wrong(api, customer, change, expected):
    response = await api.post("/orders", json=body(customer) | change)

    assert response.status_code == 422, response.text
    assert expected in response.json()["detail"]
    assert "tok_visa" not in response.text  # rejected input is not echoed: it may carry the token


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b'{"customer_id": "c", "items": [', "not valid JSON"), (b"[]", "JSON object"), (b"", "body is missing")],
)
async def test_a_body_that_is_not_an_order_object_is_a_422(api, content, expected):
    response = await api.post("/orders", content=content, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert expected in response.json()["detail"]


async def test_the_audit_trail_lists_the_events_oldest_first_without_the_payment_token(api, customer, handle):
    order_id = (await api.post("/orders", json=body(customer, ("SKU-1", 2)))).json()["order_id"]
    reserved = StockReserved(
        order_id=uuid.UUID(order_id),
        items=(PricedLine(sku="SKU-1", quantity=2, unit_price=450),),
        total_amount=900,
        currency="EUR",
    )
    await handle(Envelope.new(reserved))

    events = (await api.get(f"/orders/{order_id}/events")).json()

    assert [(e["version"], e["event_type"], e["schema_version"]) for e in events] == [
        (1, "OrderCreated", 1),
        (2, "OrderUpdated", 1),
    ]
    assert events[0]["data"]["payment_token"] == "[redacted]"
    assert events[1]["data"]["total_amount"] == 900
    order = (await api.get(f"/orders/{order_id}")).json()
    assert order["status"] == "AWAITING_PAYMENT" and order["items"][0]["unit_price"] == 450


async def test_time_travel_by_version_or_moment_and_its_refusals(api, customer):
    order_id = (await api.post("/orders", json=body(customer))).json()["order_id"]
    cancelled = (await api.post(f"/orders/{order_id}/cancel")).json()
    created_at = datetime.fromisoformat(cancelled["created_at"])

    def at(**params):
        return api.get(f"/orders/{order_id}", params=params)

    assert (await at(version=1)).json()["status"] == "PENDING"
    assert (await at(version=2)).json() == cancelled
    assert (await at(as_of=cancelled["created_at"])).json()["status"] == "PENDING"
    assert (await at(as_of=(created_at + timedelta(days=1)).isoformat())).json() == cancelled
    earlier = await at(as_of=(created_at - timedelta(seconds=1)).isoformat())
    assert earlier.status_code == 404 and "did not exist yet" in earlier.json()["detail"]
    assert (await at(version=3)).status_code == 404
    for bad in ({"version": 0}, {"version": "x"}, {"as_of": "yesterday"}, {"as_of": "2025-01-01T00:00:00"}):
        assert (await at(**bad)).status_code == 422, bad
    both = await at(version=1, as_of=cancelled["created_at"])
    assert both.status_code == 422 and "not both" in both.json()["detail"]


async def test_cancelling_answers_202_once_then_409_and_404_for_an_unknown_order(api, customer):
    order_id = (await api.post("/orders", json=body(customer))).json()["order_id"]

    first = await api.post(f"/orders/{order_id}/cancel")
    again = await api.post(f"/orders/{order_id}/cancel")
    unknown = await api.post(f"/orders/{uuid.uuid4()}/cancel")

    assert first.status_code == 202
    assert (first.json()["status"], first.json()["cancellation_reason"]) == ("CANCELLED", "customer_request")
    assert again.status_code == 409 and "CANCELLED" in again.json()["detail"]
    assert unknown.status_code == 404 and "does not exist" in unknown.json()["detail"]
    assert (await api.get(f"/orders/{uuid.uuid4()}")).status_code == 404
    assert (await api.get(f"/orders/{uuid.uuid4()}/events")).status_code == 404


async def test_orders_are_listed_newest_first_in_pages_filtered_by_customer_and_status(api, customer):
    placed = [(await api.post("/orders", json=body(customer))).json()["order_id"] for _ in range(5)]
    # The running saga may reject these orders (their SKU is in no catalog) before the cancel
    # arrives; the status filter must then return exactly the orders whose cancel went through.
    cancels = {order_id: await api.post(f"/orders/{order_id}/cancel") for order_id in (placed[1], placed[3])}
    cancelled_ids = [
        order_id for order_id in placed[::-1] if cancels.get(order_id) and cancels[order_id].status_code == 202
    ]
    assert all(response.status_code in (202, 409) for response in cancels.values())

    seen, cursor = [], None
    while True:
        params = {"customer_id": customer, "limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/orders", params=params)).json()
        assert len(page["items"]) <= 2
        seen += [order["order_id"] for order in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == placed[::-1]
    cancelled = (await api.get("/orders", params={"customer_id": customer, "status": "CANCELLED"})).json()
    assert [order["order_id"] for order in cancelled["items"]] == cancelled_ids
    assert {order["status"] for order in cancelled["items"]} <= {"CANCELLED"}
    assert cancelled["next_cursor"] is None
    for bad in ({"limit": 0}, {"limit": 101}, {"status": "NOPE"}, {"cursor": "not-a-cursor"}):
        response = await api.get("/orders", params=bad)
        assert response.status_code == 422 and response.json()["detail"], bad
