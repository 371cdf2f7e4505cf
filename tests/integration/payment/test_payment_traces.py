"""The executor's gateway call and the events of its answer continue the trace of the event that
decided the charge (docs/architecture.md, "Traces"): the payment row keeps that traceparent, the
call is a span in it, and each order's PaymentProcessed names that span, also when one transaction
records many orders' answers. Against the real Postgres; the spans kept in memory."""

import uuid

import pytest
from opentelemetry.trace import SpanKind
from payment_service.service_layer.handlers import record_order, record_reservation
from recorded_spans import recorded_spans, trace_and_span_ids, traceparent_naming
from shared.tracing import current_traceparent, process_span

pytestmark = pytest.mark.infra


def new_traceparent() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


async def test_each_orders_charge_and_payment_processed_continue_the_trace_of_the_event_that_decided_it(
    in_batch, order_created, stock_reserved, settle, payment, outbox_events, gateway_name
):
    spans = recorded_spans()
    orders = [uuid.uuid4(), uuid.uuid4()]
    traces = {order_id: new_traceparent() for order_id in orders}
    handled = []
    for order_id in orders:
        reserved = stock_reserved(order_id).model_copy(update={"traceparent": traces[order_id]})
        handled += [(record_order, order_created(order_id)), (record_reservation, reserved)]
    await in_batch(handled)  # no span current: the row keeps the deciding event's own traceparent

    for order_id in orders:
        assert (await payment(order_id))["traceparent"] == traces[order_id]
    await settle()  # both calls, their answers recorded in one transaction or two

    calls = {
        span.parent.span_id: span
        for span in spans.get_finished_spans()
        if span.name == f"charge {gateway_name}" and span.parent is not None
    }
    for order_id in orders:
        trace_id, decided_in = trace_and_span_ids(traces[order_id])
        call = calls[decided_in]
        assert call.kind is SpanKind.CLIENT
        assert call.context.trace_id == trace_id
        (processed,) = await outbox_events(str(order_id))
        assert processed.event_type == "PaymentProcessed"
        assert processed.traceparent == traceparent_naming(call)


async def test_an_intent_decided_in_a_workers_process_span_keeps_that_spans_context(
    in_batch, order_created, stock_reserved, payment, order_id
):
    recorded_spans()
    cause = new_traceparent()
    with process_span(traceparent=cause, topic="inventory-events", key=str(order_id), event_id="e", consumer_group="g"):
        await in_batch([(record_order, order_created(order_id)), (record_reservation, stock_reserved(order_id))])
        processing = current_traceparent()

    stored = (await payment(order_id))["traceparent"]
    assert stored == processing
    assert trace_and_span_ids(stored)[0] == trace_and_span_ids(cause)[0]
