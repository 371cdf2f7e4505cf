"""The order service never stores or publishes a payment token in clear: the token is sealed to the
payment service's public key before the order, the event store, the outbox or the idempotency claim
see it (against the real Postgres)."""

import uuid

import pytest
from order_service.adapters import event_store
from order_service.service_layer import handlers
from order_service.service_layer.commands import Line, PlaceOrder
from sealed_tokens import opener, sealer
from sqlalchemy import text

pytestmark = pytest.mark.infra

# Every row the placing transaction wrote, as text, whatever its columns.
ROWS_OF_THE_ORDER = {
    "order_events": "SELECT t::text FROM order_events t WHERE order_id = :order_id",
    "orders": "SELECT t::text FROM orders t WHERE order_id = :order_id",
    "outbox": "SELECT t::text FROM outbox t WHERE key = CAST(CAST(:order_id AS uuid) AS text)",
    "idempotency_keys": "SELECT t::text FROM idempotency_keys t WHERE order_id = :order_id",
}


async def test_a_placed_order_keeps_its_payment_token_only_sealed_for_the_payment_service(sessions, customer):
    token = f"tok_visa_{uuid.uuid4().hex}"
    command = PlaceOrder(customer, (Line("SKU-1", 1),), token, f"it-{uuid.uuid4()}")
    async with sessions() as session:
        placed = await handlers.place_order(session, command, sealer())
    order_id = placed.order.order_id

    async with sessions() as session:
        rows = {
            table: (await session.execute(text(query), {"order_id": order_id})).scalars().all()
            for table, query in ROWS_OF_THE_ORDER.items()
        }
        created, *_ = await event_store.history(session, order_id)

    assert all(rows.values()), f"a table holds no row of the order: {rows}"
    # As text, and as a bytea column shows it (the outbox's value): hex.
    forms = (token, token.encode().hex())
    leaks = {table: found for table, found in rows.items() if any(form in row for row in found for form in forms)}
    assert leaks == {}
    assert opener().open(created.data["payment_token"]) == token  # and the payment service can read it


async def test_a_retry_with_the_same_key_is_recognised_although_each_seal_differs(sessions, customer):
    command = PlaceOrder(customer, (Line("SKU-1", 1),), "tok_visa", f"it-{uuid.uuid4()}")
    async with sessions() as session:
        first = await handlers.place_order(session, command, sealer())
    async with sessions() as session:
        again = await handlers.place_order(session, command, sealer())
    assert (again.order.order_id, again.replayed) == (first.order.order_id, True)
