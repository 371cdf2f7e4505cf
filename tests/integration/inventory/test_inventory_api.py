"""The inventory's HTTP API, in process, against the real Postgres."""

import asyncio
import uuid

import pytest
from shared.events import LowStockAlert

pytestmark = pytest.mark.infra


def entry(**change) -> dict:
    return {"name": "Blue mug", "unit_price": 1250, "currency": "EUR", "available": 10, "reorder_level": 2} | change


async def test_put_creates_a_product_then_replaces_it_keeping_reserved_and_sold_units(
    api, new_sku, order_created, handle
):
    sku = new_sku("MUG")

    created = await api.put(f"/products/{sku}", json=entry())
    assert created.status_code == 201, created.text
    await handle(order_created({sku: 3}))
    replaced = await api.put(f"/products/{sku}", json=entry(name="Blue mug v2", unit_price=1300, available=50))

    assert replaced.status_code == 200, replaced.text
    body = (await api.get(f"/products/{sku}")).json()
    assert body == replaced.json()
    assert {key: body[key] for key in ("sku", "name", "unit_price", "currency", "available", "reserved", "sold")} == {
        "sku": sku,
        "name": "Blue mug v2",
        "unit_price": 1300,
        "currency": "EUR",
        "available": 50,
        "reserved": 3,
        "sold": 0,
    }
    assert body["reorder_level"] == 2 and body["updated_at"]


async def test_concurrent_puts_of_a_new_sku_create_it_once(api, new_sku):
    sku = new_sku()

    responses = await asyncio.gather(*(api.put(f"/products/{sku}", json=entry(available=i)) for i in range(8)))

    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]


async def test_a_restock_adds_to_the_available_units(api, new_sku):
    sku = new_sku()
    await api.put(f"/products/{sku}", json=entry(available=4))

    response = await api.post(f"/products/{sku}/restock", json={"quantity": 6})

    assert response.status_code == 200, response.text
    assert response.json()["available"] == 10


async def test_unknown_products_and_reservations_are_404_with_a_reason(api, new_sku):
    sku = new_sku()
    for response in (
        await api.get(f"/products/{sku}"),
        await api.post(f"/products/{sku}/restock", json={"quantity": 1}),
        await api.get(f"/reservations/{uuid.uuid4()}"),
    ):
        assert response.status_code == 404
        assert response.json()["detail"]


async def test_a_reservation_shows_its_priced_items_then_its_failures(api, new_sku, order_created, handle):
    sku = new_sku()
    await api.put(f"/products/{sku}", json=entry(available=3, unit_price=500))
    reserved = order_created({sku: 2})
    failed = order_created({sku: 2})
    await handle(reserved)
    await handle(failed)

    ok = (await api.get(f"/reservations/{reserved.event.order_id}")).json()
    refused = (await api.get(f"/reservations/{failed.event.order_id}")).json()

    assert ok["status"] == "RESERVED"
    assert ok["items"] == [{"sku": sku, "quantity": 2, "unit_price": 500}]
    assert (ok["total_amount"], ok["currency"], ok["failures"]) == (1000, "EUR", [])
    assert ok["order_id"] == str(reserved.event.order_id) and ok["created_at"] and ok["updated_at"]
    assert refused["status"] == "FAILED"
    assert (refused["items"], refused["total_amount"], refused["currency"]) == ([], None, None)
    assert refused["failures"] == [{"sku": sku, "requested": 2, "available": 1, "reason": "insufficient_stock"}]


async def test_a_put_that_takes_stock_below_the_reorder_level_alerts(api, new_sku, outbox_events):
    sku = new_sku()
    await api.put(f"/products/{sku}", json=entry(available=10, reorder_level=3))
    await api.put(f"/products/{sku}", json=entry(available=2, reorder_level=3))
    await api.put(f"/products/{sku}", json=entry(available=1, reorder_level=3))  # still low: no new alert

    (alert,) = await outbox_events(sku)

    assert alert.event == LowStockAlert(sku=sku, available=2, reorder_level=3)
    assert alert.causation_id is None


@pytest.mark.parametrize(
    "body",
    [
        entry(unit_price=-1),
        entry(unit_price=12.5),
        entry(unit_price="1250"),
        entry(unit_price=10**13),
        entry(currency="eur"),
        entry(currency="EURO"),
        entry(available=-1),
        entry(available=True),
        entry(available=2**31),
        entry(reorder_level=-1),
        entry(name=""),
        entry(name="   "),
        entry(colour="blue"),
        {"name": "Blue mug", "unit_price": 1250, "currency": "EUR"},
        [],
    ],
    ids=lambda body: str(body)[:60],
)
async def test_a_put_of_a_nonsensical_entry_is_422_with_a_reason(api, new_sku, body):
    response = await api.put(f"/products/{new_sku()}", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize("body", [{"quantity": 0}, {"quantity": -3}, {"quantity": 1.5}, {}, {"quantity": 1, "x": 1}])
async def test_a_restock_of_nothing_or_nonsense_is_422(api, new_sku, body):
    sku = new_sku()
    await api.put(f"/products/{sku}", json=entry())

    response = await api.post(f"/products/{sku}/restock", json=body)

    assert response.status_code == 422, response.text


async def test_a_restock_beyond_the_stock_limit_is_422_not_an_overflow(api, new_sku):
    sku = new_sku()
    await api.put(f"/products/{sku}", json=entry(available=999_999_999))

    response = await api.post(f"/products/{sku}/restock", json={"quantity": 999_999_999})

    assert response.status_code == 422
    assert "exceeds" in response.json()["detail"]


async def test_malformed_json_a_bad_sku_or_a_bad_order_id_is_422(api):
    malformed = await api.put("/products/MUG-1", content=b'{"name": ', headers={"content-type": "application/json"})
    bad_sku = await api.get("/products/-not ok-")
    bad_order_id = await api.get("/reservations/not-a-uuid")

    assert [r.status_code for r in (malformed, bad_sku, bad_order_id)] == [422, 422, 422]


async def test_the_openapi_document_describes_every_route(api):
    paths = (await api.get("/openapi.json")).json()["paths"]

    assert {"/products/{sku}", "/products/{sku}/restock", "/reservations/{order_id}"} <= set(paths)
    assert paths["/products/{sku}"]["put"]["summary"]
    assert paths["/products/{sku}"]["put"]["description"].startswith("Create or replace")


@pytest.fixture
async def customer_client(inventory_app, caller_of):
    async with caller_of(inventory_app, "it-customer", "customer") as client:
        yield client


@pytest.fixture
async def support_client(inventory_app, caller_of):
    async with caller_of(inventory_app, "it-support", "support") as client:
        yield client


async def test_only_an_admin_writes_the_catalog_or_restocks(api, customer_client, support_client, new_sku):
    sku = new_sku()
    await api.put(f"/products/{sku}", json=entry(unit_price=1250))

    for client in (customer_client, support_client):
        repriced = await client.put(f"/products/{sku}", json=entry(unit_price=0))
        restocked = await client.post(f"/products/{sku}/restock", json={"quantity": 5})
        assert repriced.status_code == restocked.status_code == 403
        assert repriced.json()["type"] == "urn:problem:forbidden" and "needs admin" in repriced.json()["detail"]

    product = (await customer_client.get(f"/products/{sku}")).json()  # any caller reads the catalog
    assert (product["unit_price"], product["available"]) == (1250, 10)


async def test_reservations_are_for_support_and_admin_only(
    api, customer_client, support_client, new_sku, add_product, order_created, handle
):
    sku = new_sku()
    await add_product(sku, available=5)
    order_id = uuid.uuid4()
    await handle(order_created({sku: 1}, order_id=order_id))

    refused = await customer_client.get(f"/reservations/{order_id}")

    assert refused.status_code == 403
    assert (await support_client.get(f"/reservations/{order_id}")).json()["status"] == "RESERVED"
    assert (await api.get(f"/reservations/{order_id}")).status_code == 200  # api: admin
