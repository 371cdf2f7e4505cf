"""The HTTP contract the three APIs share (shared/problems.py, shared/api_types.py), in process
against the real Postgres: every refusal is an RFC 9457 problem, an outage is a 503 with
Retry-After, text that Postgres cannot store is a 422, and a 405 names the methods that work."""

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from inventory_service.entrypoints.api import create_app as inventory_app
from inventory_service.settings import Settings as InventorySettings
from order_service.entrypoints.api import create_app as order_app
from order_service.settings import Settings as OrderSettings
from payment_service.entrypoints.api import create_app as payment_app
from payment_service.settings import Settings as PaymentSettings
from sqlalchemy import text

pytestmark = pytest.mark.infra

PROBLEM = "application/problem+json"
ORDER = {"customer_id": "it-contract", "items": [{"sku": "SKU-1", "quantity": 1}], "payment_token": "tok_visa"}
PRODUCT = {"name": "Blue mug", "unit_price": 1250, "currency": "EUR", "available": 10, "reorder_level": 2}
# Who calls each API: a role that may use every operation the tests call (docs/security.md, Roles).
CUSTOMER, SUPPORT, ADMIN = ("it-contract", "customer"), ("it-support", "support"), ("it-admin", "admin")


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM, response.headers
    problem = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(problem), problem
    assert problem["status"] == status and isinstance(problem["detail"], str) and problem["detail"]
    return problem


@pytest.fixture(scope="module")
async def apis(migrate, in_process_api) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    for service in ("order", "payment", "inventory"):
        migrate(service)
    async with (
        in_process_api(order_app(OrderSettings(db_pool_size=2)), caller=CUSTOMER) as order,
        in_process_api(payment_app(PaymentSettings(db_pool_size=2)), caller=SUPPORT) as payment,
        in_process_api(inventory_app(InventorySettings(db_pool_size=2)), caller=ADMIN) as inventory,
    ):
        yield {"order": order, "payment": payment, "inventory": inventory}


# -- text Postgres cannot store ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "headers", "params"),
    [
        ({"customer_id": "a\u0000b"}, {}, {}),
        ({"payment_token": "tok_\u0000visa"}, {}, {}),
        ({}, {"Idempotency-Key": "key\u0000one"}, {}),
    ],
    ids=["customer_id", "payment_token", "idempotency_key"],
)
async def test_a_nul_character_in_an_order_is_a_422_problem_not_a_500(apis, change, headers, params):
    response = await apis["order"].post("/orders", json=ORDER | change, headers=headers, params=params)

    problem = assert_problem(response, 422)
    assert problem["errors"] and "tok_" not in response.text


async def test_a_nul_character_in_a_filter_is_a_422_problem(apis):
    assert_problem(await apis["order"].get("/orders", params={"customer_id": "a\u0000b"}), 422)


async def test_a_nul_character_in_a_product_name_is_a_422_problem_not_a_500(apis):
    response = await apis["inventory"].put(f"/products/NUL-{uuid.uuid4().hex[:8]}", json=PRODUCT | {"name": "a\u0000b"})

    assert_problem(response, 422)


# -- bodies -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "method", "path"),
    [
        ("order", "POST", "/orders"),
        ("inventory", "PUT", "/products/MUG-1"),
        ("inventory", "POST", "/products/M/restock"),
    ],
)
async def test_a_body_that_is_not_utf_8_is_a_422_problem(apis, service, method, path):
    response = await apis[service].request(
        method, path, content=b'{"name": "caf\xe9"}', headers={"content-type": "application/json"}
    )

    problem = assert_problem(response, 422)
    assert "UTF-8" in problem["detail"]


async def test_integers_written_as_1_0_are_integers(apis):
    order = await apis["order"].post("/orders", json=ORDER | {"items": [{"sku": "SKU-1", "quantity": 2.0}]})
    product = await apis["inventory"].put(f"/products/F-{uuid.uuid4().hex[:8]}", json=PRODUCT | {"unit_price": 1250.0})

    assert order.status_code == 202, order.text
    assert order.json()["items"] == [{"sku": "SKU-1", "quantity": 2, "unit_price": None}]
    assert product.status_code == 201 and product.json()["unit_price"] == 1250
    for fraction in ({"items": [{"sku": "SKU-1", "quantity": 1.5}]}, {"items": [{"sku": "SKU-1", "quantity": True}]}):
        assert_problem(await apis["order"].post("/orders", json=ORDER | fraction), 422)


async def test_a_sku_on_several_lines_is_ordered_once_with_the_summed_quantity(apis):
    lines = [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-2", "quantity": 1}, {"sku": "SKU-1", "quantity": 2}]

    response = await apis["order"].post("/orders", json=ORDER | {"items": lines})

    assert response.status_code == 202, response.text
    assert [(i["sku"], i["quantity"]) for i in response.json()["items"]] == [("SKU-1", 3), ("SKU-2", 1)]


# -- query parameters ----------------------------------------------------------------------------


async def test_an_empty_cursor_or_as_of_is_the_same_as_none(apis):
    order = (await apis["order"].post("/orders", json=ORDER)).json()

    page = await apis["order"].get("/orders", params={"customer_id": ORDER["customer_id"], "cursor": ""})
    now = await apis["order"].get(f"/orders/{order['order_id']}", params={"as_of": ""})

    assert page.status_code == 200, page.text
    assert now.status_code == 200 and now.json()["order_id"] == order["order_id"], now.text


# -- routes and methods --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "method", "path", "allowed"),
    [
        ("inventory", "DELETE", "/products/MUG-1", "GET, PUT"),
        ("inventory", "GET", "/products/MUG-1/restock", "POST"),
        ("order", "PUT", "/orders", "GET, POST"),
        ("order", "DELETE", f"/orders/{uuid.uuid4()}", "GET"),
        ("payment", "POST", f"/payments/{uuid.uuid4()}", "GET"),
    ],
)
async def test_a_method_the_path_does_not_have_is_a_405_naming_every_method_it_has(
    apis, service, method, path, allowed
):
    response = await apis[service].request(method, path)

    assert_problem(response, 405)
    assert response.headers["allow"] == allowed


async def test_an_unknown_path_is_a_404_problem(apis):
    problem = assert_problem(await apis["payment"].get("/nowhere"), 404)

    assert problem["instance"] == "/nowhere"


@pytest.mark.parametrize(
    ("service", "path"),
    [("order", f"/orders/{uuid.uuid4()}"), ("payment", f"/payments/{uuid.uuid4()}"), ("inventory", "/products/NO-1")],
)
async def test_an_unknown_resource_is_a_404_problem_of_its_own_type(apis, service, path):
    problem = assert_problem(await apis[service].get(path), 404)

    assert problem["type"].startswith("urn:problem:") and problem["instance"] == path


async def test_validation_problems_list_each_error_with_its_location(apis):
    response = await apis["order"].post("/orders", json=ORDER | {"items": [{"sku": "SKU-1", "quantity": 0}]})

    problem = assert_problem(response, 422)
    assert problem["errors"] == [
        {
            "loc": ["body", "items", 0, "quantity"],
            "msg": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        }
    ]
    assert "items.0.quantity" in problem["detail"]


# -- the database is away ------------------------------------------------------------------------


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("create_app", "settings", "caller", "method", "path", "body"),
    [
        (order_app, OrderSettings, CUSTOMER, "POST", "/orders", ORDER),
        (order_app, OrderSettings, CUSTOMER, "GET", f"/orders/{uuid.uuid4()}", None),
        (payment_app, PaymentSettings, SUPPORT, "GET", f"/payments/{uuid.uuid4()}", None),
        (inventory_app, InventorySettings, ADMIN, "PUT", "/products/MUG-1", PRODUCT),
    ],
    ids=["place-order", "get-order", "get-payment", "put-product"],
)
async def test_an_unreachable_database_is_a_503_problem_with_retry_after(
    in_process_api, create_app, settings, caller, method, path, body
):
    url = f"postgresql+asyncpg://u:p@127.0.0.1:{closed_port()}/ecommerce"

    async with in_process_api(create_app(settings(database_url=url)), caller=caller) as api:
        response = await api.request(method, path, json=body)

    problem = assert_problem(response, 503)
    assert int(response.headers["retry-after"]) > 0
    assert problem["type"] == "urn:problem:database-unavailable"


async def backend_pids(api_app) -> set[int]:
    """The server process ids behind every connection in the app's pool (all checked out at once)."""
    engine = api_app.state.engine
    connections = [await engine.connect() for _ in range(engine.pool.checkedin())]
    try:
        return {(await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() for conn in connections}
    finally:
        for conn in connections:
            await conn.close()


async def test_after_its_connections_were_terminated_the_api_answers_from_fresh_ones(
    in_process_api, postgres_dsns, migrate
):
    """What a Postgres restart does to a running API's pool, without restarting the shared Postgres."""
    import asyncpg

    migrate("order")
    app = order_app(OrderSettings(db_pool_size=3))
    async with in_process_api(app, caller=CUSTOMER) as api:
        placed = await asyncio.gather(*(api.post("/orders", json=ORDER) for _ in range(3)))
        assert {r.status_code for r in placed} == {202}
        pids = await backend_pids(app)
        killer = await asyncpg.connect(postgres_dsns["order_svc"])  # a role may end its own backends
        try:
            await killer.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", list(pids))
        finally:
            await killer.close()

        first = await api.get(f"/orders/{placed[0].json()['order_id']}")
        second = await api.get(f"/orders/{placed[1].json()['order_id']}")

        assert first.status_code in (200, 503), first.text
        if first.status_code == 503:
            assert_problem(first, 503)
        assert second.status_code == 200, second.text
        assert not pids & await backend_pids(app)
