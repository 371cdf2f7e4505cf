"""The API's reads (service_layer/queries.py) against the real Postgres: typed, and a NotFound error
rather than None."""

import uuid

import pytest
from payment_service.domain import PaymentStatus
from payment_service.service_layer import queries
from payment_service.service_layer.errors import PaymentNotFound
from payment_service.service_layer.handlers import record_order, record_reservation

pytestmark = pytest.mark.infra


async def test_a_payment_is_read_as_a_typed_view_without_its_token(
    migrated, sessions, order_id, order_created, stock_reserved, in_transaction
):
    await in_transaction(record_order, order_created(order_id, "tok_visa"))
    await in_transaction(record_reservation, stock_reserved(order_id, amount=4200, currency="USD"))

    async with sessions() as session:
        view = await queries.get_payment(session, order_id)

    assert view.status is PaymentStatus.CHARGING
    assert (view.order_id, view.amount, view.currency) == (order_id, 4200, "USD")
    assert "tok_visa" not in repr(view)


async def test_an_order_the_service_has_not_seen_is_payment_not_found(migrated, sessions):
    unknown = uuid.uuid4()

    async with sessions() as session:
        with pytest.raises(PaymentNotFound, match=f"no payment for order {unknown}"):
            await queries.get_payment(session, unknown)
