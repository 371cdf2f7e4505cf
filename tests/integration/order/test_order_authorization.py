"""Who may do what with orders (docs/security.md, Roles), in process against the real Postgres: a
customer acts as itself and sees only its own orders; another customer's order is a 404, as if it
did not exist; support reads any order and changes none."""

import uuid

import pytest

pytestmark = pytest.mark.infra

ORDER = {"items": [{"sku": "SKU-1", "quantity": 1}], "payment_token": "tok_visa"}


@pytest.fixture
async def intruder(order_app, caller_of):
    async with caller_of(order_app, f"it-intruder-{uuid.uuid4().hex[:8]}", "customer") as client:
        yield client


@pytest.fixture
async def support(order_app, caller_of):
    async with caller_of(order_app, "it-support", "support") as client:
        yield client


@pytest.fixture
async def placed(api) -> str:
    response = await api.post("/orders", json=ORDER)
    assert response.status_code == 202, response.text
    return response.json()["order_id"]


async def test_a_customer_places_orders_as_the_token_s_subject(api, customer):
    without_id = await api.post("/orders", json=ORDER)
    with_own_id = await api.post("/orders", json=ORDER | {"customer_id": customer})

    assert without_id.status_code == 202 and without_id.json()["customer_id"] == customer
    assert with_own_id.status_code == 202 and with_own_id.json()["customer_id"] == customer


async def test_a_customer_cannot_place_an_order_as_another_customer(api):
    response = await api.post("/orders", json=ORDER | {"customer_id": "someone-else"})

    assert response.status_code == 403, response.text
    assert response.json()["type"] == "urn:problem:forbidden" and "as yourself" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    ["/orders/{id}", "/orders/{id}/events", "/orders/{id}?version=1", "/orders/{id}?as_of=2100-01-01T00:00:00Z"],
)
async def test_another_customer_s_order_is_a_404_like_an_order_that_does_not_exist(intruder, placed, path):
    theirs = await intruder.get(path.format(id=placed))
    unknown_id = str(uuid.uuid4())
    nobody_s = await intruder.get(path.format(id=unknown_id))

    assert theirs.status_code == nobody_s.status_code == 404
    assert theirs.json()["detail"].replace(placed, "X") == nobody_s.json()["detail"].replace(unknown_id, "X")


async def test_a_customer_cannot_cancel_another_customer_s_order(api, intruder, placed):
    response = await intruder.post(f"/orders/{placed}/cancel")

    assert response.status_code == 404
    assert (await api.get(f"/orders/{placed}")).json()["status"] == "PENDING"


async def test_a_customer_lists_only_its_own_orders(api, intruder, placed, customer):
    own = (await api.get("/orders")).json()["items"]
    theirs = (await intruder.get("/orders", params={"limit": 100})).json()["items"]
    filtered = await intruder.get("/orders", params={"customer_id": customer})

    assert [order["order_id"] for order in own] == [placed]
    assert placed not in {order["order_id"] for order in theirs}
    assert filtered.status_code == 403 and "only its own orders" in filtered.json()["detail"]


async def test_support_reads_and_lists_any_order_but_cannot_cancel_or_place(support, placed, customer):
    read = await support.get(f"/orders/{placed}")
    history = await support.get(f"/orders/{placed}/events")
    listed = (await support.get("/orders", params={"customer_id": customer})).json()["items"]
    cancel = await support.post(f"/orders/{placed}/cancel")
    place = await support.post("/orders", json=ORDER | {"customer_id": customer})

    assert read.status_code == 200 and history.status_code == 200
    assert [order["order_id"] for order in listed] == [placed]
    assert cancel.status_code == 403 and place.status_code == 403
    assert read.json()["status"] == "PENDING"


async def test_an_admin_reads_orders_but_cannot_place_or_cancel_them(order_app, caller_of, placed):
    async with caller_of(order_app, "it-admin", "admin") as admin:
        assert (await admin.get(f"/orders/{placed}")).status_code == 200
        assert (await admin.post(f"/orders/{placed}/cancel")).status_code == 403
        assert (await admin.post("/orders", json=ORDER | {"customer_id": "c"})).status_code == 403
