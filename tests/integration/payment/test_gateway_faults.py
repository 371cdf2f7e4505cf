"""A charge is never taken and lost: the gateway is called only for an intent committed before the
call, outside any transaction, and whatever happens to the call or to the process making it, the
intent is resolved by its idempotency key (issue 7). Against the real Postgres, with the test's
own executor and a recording gateway; faults come from the fault file, as in the running system."""

import asyncio
import time
import uuid

import pytest
from payment_service.entrypoints.executor import GatewayExecutor
from payment_service.service_layer import gateway_calls
from payment_service.service_layer.handlers import cancel_payment, record_order, record_reservation
from payment_service.service_layer.unit_of_work import open_batch
from prometheus_client import REGISTRY
from sealed_tokens import opener, opener_for

pytestmark = pytest.mark.infra


async def test_a_charge_whose_recording_died_is_refunded_when_the_cancellation_comes_first(
    order_id,
    order_created,
    stock_reserved,
    order_cancelled,
    in_transaction,
    sessions,
    settings,
    gateway_name,
    settle,
    gateway,
    payment,
    outbox_events,
    eventually,
):
    """The issue's scenario: the gateway charged, the process died before recording it, and
    OrderCancelled arrived first on restart. The charge must be found by its key and refunded."""
    await in_transaction(record_order, order_created(order_id))
    reserved = stock_reserved(order_id)
    await in_transaction(record_reservation, reserved)
    gateway.freeze_after_charge = True

    (claim,) = await gateway_calls.claim_due(sessions, gateway_name, settings, limit=10)
    dying = asyncio.create_task(gateway_calls.call_gateway(gateway, claim, settings, opener()))
    await gateway.charged.wait()
    dying.cancel()  # the process dies: the money moved, the answer is never recorded
    with pytest.raises(asyncio.CancelledError):
        await dying
    await in_transaction(cancel_payment, order_cancelled(order_id))
    await in_transaction(record_reservation, reserved)  # redelivered: its offset was never committed

    assert (await payment(order_id))["status"] == "CHARGING"  # not VOIDED: money may have moved

    async def refunded() -> bool:
        await settle()  # the restarted executor, once the dead one's claim ran out
        return (await payment(order_id))["status"] == "REFUNDED"

    await eventually(refunded, timeout=10, interval=0.1, what="the lost charge found and refunded")
    assert list(gateway.charges) == [f"charge:{order_id}"] and list(gateway.refunds) == [f"refund:{order_id}"]
    assert gateway.calls == [f"charge:{order_id}", f"charge:{order_id}", f"refund:{order_id}"]
    processed, refund = await outbox_events(str(order_id))
    assert processed.event_type == "PaymentProcessed" and refund.event_type == "RefundIssued"
    assert refund.event.payment_id == processed.event.payment_id == (await payment(order_id))["payment_id"]


async def test_a_cancellation_while_charging_is_refunded_once_the_charge_is_answered(
    order_id, order_created, stock_reserved, order_cancelled, in_transaction, settle, gateway, payment, outbox_events
):
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id))

    await in_transaction(cancel_payment, order_cancelled(order_id))
    row = await payment(order_id)
    assert row["status"] == "CHARGING" and row["cancelled_at"] is not None
    await settle()

    assert (await payment(order_id))["status"] == "REFUNDED"
    assert list(gateway.charges) == [f"charge:{order_id}"] and list(gateway.refunds) == [f"refund:{order_id}"]
    assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentProcessed", "RefundIssued"]


async def test_a_hanging_gateway_holds_no_row_lock_is_cut_by_the_timeout_and_charges_once_it_answers(
    order_id,
    order_created,
    stock_reserved,
    in_transaction,
    executor,
    settings,
    gateway,
    fault_file,
    payment,
    eventually,
):
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id))
    fault_file.write_text("hang")

    assert await executor.start_due_calls() == 1  # the call is now hanging
    started = time.monotonic()
    await asyncio.wait_for(in_transaction(record_order, order_created(order_id)), timeout=settings.gateway_timeout_s)
    handler_seconds = time.monotonic() - started
    await executor.drain()  # the timeout cut the call

    row = await payment(order_id)
    assert handler_seconds < 0.25, handler_seconds
    assert row["status"] == "CHARGING" and row["last_error"] == "no answer within 0.5 s" and row["attempts"] == 1
    stop = asyncio.Event()
    running = asyncio.create_task(executor.run(stop))
    try:

        async def asked_again() -> bool:
            return (await payment(order_id))["attempts"] >= 3

        await eventually(asked_again, timeout=10, interval=0.1, what="the hanging call asked again")
        fault_file.unlink()

        async def charged() -> bool:
            return (await payment(order_id))["status"] == "CHARGED"

        await eventually(charged, timeout=10, interval=0.1, what="the charge once the gateway answers")
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    assert gateway.calls == [f"charge:{order_id}"]  # the hanging calls never reached the gateway's books
    assert (await payment(order_id))["last_error"] is None


async def test_a_failing_gateway_is_asked_again_with_backoff_and_charges_once_it_recovers(
    order_id,
    order_created,
    stock_reserved,
    in_transaction,
    running_executor,
    gateway,
    fault_file,
    payment,
    outbox_events,
    eventually,
):
    unavailable_before = failed_calls_counted()
    fault_file.write_text("error")
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id))  # the handler never fails for it

    async def failed_three_times():
        row = await payment(order_id)
        return row if row["attempts"] >= 3 else None

    row = await eventually(failed_three_times, timeout=10, interval=0.05, what="three failed calls")
    assert row["status"] == "CHARGING" and "fault injected: error" in row["last_error"]
    assert failed_calls_counted() - unavailable_before >= 3
    fault_file.unlink()

    async def charged() -> bool:
        return (await payment(order_id))["status"] == "CHARGED"

    await eventually(charged, timeout=10, interval=0.1, what="the charge once the gateway recovers")
    assert gateway.calls == [f"charge:{order_id}"]
    assert [e.event_type for e in await outbox_events(str(order_id))] == ["PaymentProcessed"]


async def test_a_committed_intent_wakes_the_executor_at_once_without_waiting_for_its_sweep(
    order_id, order_created, stock_reserved, settings, sessions, gateway, gateway_name, payment, eventually
):
    slow_sweep = settings.model_copy(update={"executor_sweep_interval_s": 60.0})
    executor = GatewayExecutor(slow_sweep, sessions, gateway, gateway_name=gateway_name)
    stop = asyncio.Event()
    running = asyncio.create_task(executor.run(stop))
    try:
        for handler, envelope in (
            (record_order, order_created(order_id)),
            (record_reservation, stock_reserved(order_id)),
        ):
            async with sessions() as session:
                async with session.begin():
                    batch = await open_batch(session, [envelope])
                    await handler(batch, envelope, gateway=gateway_name, on_intent=executor.wake, **opener_for(handler))
                    await batch.flush()
                batch.committed()

        async def charged() -> bool:
            return (await payment(order_id))["status"] == "CHARGED"

        await eventually(charged, timeout=3, interval=0.05, what="charged long before the next sweep")
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)


async def test_two_executors_on_the_same_intents_call_the_gateway_once_per_charge(
    order_created, stock_reserved, in_transaction, settings, sessions, gateway, gateway_name, payment, eventually
):
    orders = [uuid.uuid4() for _ in range(30)]
    executors = [GatewayExecutor(settings, sessions, gateway, gateway_name=gateway_name) for _ in range(2)]
    stop = asyncio.Event()
    running = [asyncio.create_task(executor.run(stop)) for executor in executors]
    try:
        await asyncio.gather(*(in_transaction(record_order, order_created(order_id)) for order_id in orders))
        await asyncio.gather(*(in_transaction(record_reservation, stock_reserved(order_id)) for order_id in orders))

        async def all_charged() -> bool:
            return all([(await payment(order_id))["status"] == "CHARGED" for order_id in orders])

        await eventually(all_charged, timeout=10, interval=0.1, what="every order charged")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), timeout=10)
    assert sorted(gateway.calls) == sorted(f"charge:{order_id}" for order_id in orders)


def failed_calls_counted() -> float:
    """payment_gateway_calls_total{call="charge", outcome="unavailable"} in this process."""
    sample = REGISTRY.get_sample_value("payment_gateway_calls_total", {"call": "charge", "outcome": "unavailable"})
    return sample or 0.0
