"""POST /orders starts the order's trace (docs/architecture.md, "Traces"): the API's server span, and
the OrderCreated it writes to the outbox names that span; a request that arrives with a traceparent
continues the caller's trace. The API in process, against the real Postgres; spans kept in memory."""

import uuid

import pytest
from opentelemetry.trace import SpanKind
from recorded_spans import recorded_spans, trace_and_span_ids, traceparent_naming

pytestmark = pytest.mark.infra


def order_body(customer: str) -> dict:
    return {"items": [{"sku": "SKU-1", "quantity": 1}], "payment_token": "tok_visa", "customer_id": customer}


async def test_placing_an_order_starts_a_trace_that_its_order_created_continues(api, customer, outbox_events):
    spans = recorded_spans()

    response = await api.post("/orders", json=order_body(customer))

    assert response.status_code == 202, response.text
    (request,) = [span for span in spans.get_finished_spans() if span.kind is SpanKind.SERVER]
    assert request.name == "POST /orders"
    assert request.parent is None  # the trace starts here
    (created,) = await outbox_events(response.json()["order_id"])
    assert created.event_type == "OrderCreated"
    assert created.traceparent == traceparent_naming(request)


async def test_a_request_with_a_traceparent_places_the_order_in_the_callers_trace(api, customer, outbox_events):
    spans = recorded_spans()
    caller = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    response = await api.post("/orders", json=order_body(customer), headers={"traceparent": caller})

    assert response.status_code == 202, response.text
    (request,) = [span for span in spans.get_finished_spans() if span.kind is SpanKind.SERVER]
    trace_id, span_id = trace_and_span_ids(caller)
    assert request.context.trace_id == trace_id
    assert request.parent is not None and request.parent.span_id == span_id
    (created,) = await outbox_events(response.json()["order_id"])
    assert created.traceparent == traceparent_naming(request)


async def test_health_probes_make_no_spans(api):
    spans = recorded_spans()

    assert (await api.get("/health/live")).status_code == 200

    assert spans.get_finished_spans() == ()
