"""The payment service's HTTP API, in process, against the real Postgres."""

import uuid

import pytest
from payment_service.service_layer.handlers import cancel_payment, record_order, record_reservation

pytestmark = pytest.mark.infra

FIELDS = {
    "order_id",
    "status",
    "amount",
    "currency",
    "payment_id",
    "failure_reason",
    "charged_at",
    "refunded_at",
    "created_at",
    "updated_at",
}


async def test_a_charged_then_refunded_payment_shows_its_amount_and_times_but_never_the_token(
    api, order_id, order_created, stock_reserved, order_cancelled, in_transaction, settle
):
    await in_transaction(record_order, order_created(order_id, "tok_visa"))
    await in_transaction(record_reservation, stock_reserved(order_id, amount=4200, currency="USD"))
    charging = (await api.get(f"/payments/{order_id}")).json()
    await settle()
    charged = (await api.get(f"/payments/{order_id}")).json()
    await in_transaction(cancel_payment, order_cancelled(order_id))
    refunding = (await api.get(f"/payments/{order_id}")).json()
    await settle()

    response = await api.get(f"/payments/{order_id}")

    assert response.status_code == 200
    refunded = response.json()
    assert set(refunded) == FIELDS
    assert "tok_visa" not in response.text
    assert charging["status"] == "CHARGING" and charging["payment_id"] is None
    assert charged["status"] == "CHARGED" and charged["refunded_at"] is None
    assert refunding["status"] == "REFUNDING" and refunding["refunded_at"] is None
    assert refunded["status"] == "REFUNDED"
    assert (refunded["amount"], refunded["currency"]) == (4200, "USD")
    assert refunded["payment_id"] == charged["payment_id"] is not None
    assert refunded["charged_at"] == charged["charged_at"] and refunded["refunded_at"] is not None


async def test_a_payment_awaiting_its_amount_has_none_yet(api, order_id, order_created, in_transaction):
    await in_transaction(record_order, order_created(order_id))

    body = (await api.get(f"/payments/{order_id}")).json()

    assert body["status"] == "AWAITING_DETAILS"
    assert (body["amount"], body["currency"], body["payment_id"], body["charged_at"]) == (None, None, None, None)


async def test_an_unknown_order_is_404_and_a_malformed_id_422(api):
    unknown = await api.get(f"/payments/{uuid.uuid4()}")
    malformed = await api.get("/payments/not-a-uuid")

    assert unknown.status_code == 404 and "no payment" in unknown.json()["detail"]
    assert malformed.status_code == 422 and malformed.json()["detail"]


async def test_a_customer_sees_the_payment_of_its_own_order_and_another_s_is_a_404(
    payment_app, caller_of, order_id, order_created, in_transaction
):
    await in_transaction(record_order, order_created(order_id, customer_id="it-alice"))
    unknown_id = uuid.uuid4()

    async with (
        caller_of(payment_app, "it-alice", "customer") as alice,
        caller_of(payment_app, "it-bob", "customer") as bob,
    ):
        own = await alice.get(f"/payments/{order_id}")
        theirs = await bob.get(f"/payments/{order_id}")
        nobody_s = await bob.get(f"/payments/{unknown_id}")

    assert own.status_code == 200 and own.json()["order_id"] == str(order_id)
    assert theirs.status_code == nobody_s.status_code == 404
    assert theirs.json()["detail"].replace(str(order_id), "X") == nobody_s.json()["detail"].replace(
        str(unknown_id), "X"
    )


async def test_support_and_admin_see_any_payment(api, payment_app, caller_of, order_id, order_created, in_transaction):
    await in_transaction(record_order, order_created(order_id, customer_id="it-alice"))

    async with caller_of(payment_app, "it-admin", "admin") as admin:
        assert (await admin.get(f"/payments/{order_id}")).status_code == 200
    assert (await api.get(f"/payments/{order_id}")).status_code == 200  # api: support


async def test_the_payment_records_the_order_s_customer(order_id, order_created, in_transaction, payment):
    await in_transaction(record_order, order_created(order_id, customer_id="it-alice"))

    assert (await payment(order_id))["customer_id"] == "it-alice"
