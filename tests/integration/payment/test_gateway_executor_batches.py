"""The gateway executor works on sets of intents: one transaction claims as many due intents as
there is room for, their calls run concurrently, and their outcomes are recorded in groups (those
that arrive while a recording transaction runs go together in the next one). Against the real
Postgres, with the test's own executor and a recording gateway."""

import asyncio
import uuid
from uuid import UUID

import pytest
from payment_service.entrypoints.executor import GatewayExecutor
from payment_service.service_layer.handlers import record_order, record_reservation

pytestmark = pytest.mark.infra


@pytest.fixture
def decide_charges(order_created, stock_reserved, in_batch):
    """`await decide_charges(n)`: n new orders whose charge is decided (CHARGING), in one batch."""

    async def decide(n: int) -> list[UUID]:
        orders = [uuid.uuid4() for _ in range(n)]
        await in_batch(
            [
                (handler, build(order_id))
                for order_id in orders
                for handler, build in ((record_order, order_created), (record_reservation, stock_reserved))
            ]
        )
        return orders

    return decide


async def test_settling_twenty_intents_runs_as_many_statements_as_settling_one(
    decide_charges, executor, count_statements, gateway, payment, outbox_events
):
    one = await decide_charges(1)
    with count_statements() as for_one:
        assert await executor.start_due_calls() == 1
        await executor.drain()
    twenty = await decide_charges(20)
    with count_statements() as for_twenty:
        assert await executor.start_due_calls() == 20
        await executor.drain()

    # Claim: lock the due rows, write their leases. Record: lock, write the answers, the events.
    assert len(for_twenty) == len(for_one) == 5, for_twenty
    assert for_twenty == for_one  # the same texts: each prepared once per connection, whatever the size
    assert sorted(gateway.approved_charges()) == sorted(f"charge:{order_id}" for order_id in one + twenty)
    for order_id in one + twenty:
        assert (await payment(order_id))["status"] == "CHARGED"
        assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentProcessed"]


class GatedGateway:
    """Answers the first call at once and holds the others until `release` is set."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.release = asyncio.Event()
        self.answered = 0

    async def charge(self, **call):
        self.answered += 1
        if self.answered > 1:
            await self.release.wait()
        return await self.inner.charge(**call)

    async def refund(self, **call):
        return await self.inner.refund(**call)


def is_recording_lock(statement: str) -> bool:
    """A recording transaction locking its payments (the claim skips locked rows; a recording waits)."""
    return "FOR UPDATE" in statement and "SKIP LOCKED" not in statement


async def test_answers_arriving_while_an_outcome_is_being_recorded_are_recorded_together_next(
    decide_charges, settings, sessions, count_statements, gateway, gateway_name, payment
):
    orders = await decide_charges(10)
    gated = GatedGateway(gateway)
    executor = GatewayExecutor(settings, sessions, gated, gateway_name=gateway_name)

    # The first answer's recording is under way when the nine others arrive.
    def release_once_recording(statement: str) -> None:
        if is_recording_lock(statement):
            gated.release.set()

    with count_statements(release_once_recording) as statements:
        assert await executor.start_due_calls() == 10
        await executor.drain()

    recordings = [statement for statement in statements if is_recording_lock(statement)]
    assert len(recordings) == 2  # the first answer alone, then the nine together
    assert {(await payment(order_id))["status"] for order_id in orders} == {"CHARGED"}
    assert sorted(gateway.calls) == sorted(f"charge:{order_id}" for order_id in orders)
