"""The saga deadline's cancellation continues the order's trace (docs/architecture.md, "Traces"):
the event store keeps each event's traceparent, and the sweep cancels an overdue order in a span,
the child of its last event's, which its OrderCancelled names. Against the real Postgres, with
orders placed in 2100 like test_saga_deadline.py's (unheard by the running saga); spans in memory."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from order_service.adapters import event_store
from order_service.service_layer import handlers
from recorded_spans import recorded_spans, spans_named, traceparent_naming
from shared.tracing import continued

pytestmark = pytest.mark.infra

PLACED_AT = datetime(2100, 1, 1, tzinfo=UTC)
DEADLINE = timedelta(seconds=1)
SWEPT_AT = PLACED_AT + timedelta(seconds=2)


async def test_an_order_cancelled_by_the_saga_deadline_stays_in_the_trace_of_its_last_event(
    sessions, place_unheard, outbox_events
):
    spans = recorded_spans()
    with continued(f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01", "placing"):
        order_id = await place_unheard(PLACED_AT)
    (placing,) = spans_named(spans, "placing")
    async with sessions() as session:
        (created,) = await event_store.history(session, order_id)
    assert created.traceparent == traceparent_naming(placing)

    async with sessions() as session:
        assert order_id in await handlers.time_out_overdue_orders(session, DEADLINE, limit=1000, now=SWEPT_AT)

    (cancelled,) = await outbox_events(order_id)
    (deadline,) = [
        span
        for span in spans_named(spans, "saga deadline")
        if span.attributes and span.attributes.get("order.id") == str(order_id)
    ]
    assert deadline.parent is not None and deadline.parent.span_id == placing.context.span_id
    assert deadline.context.trace_id == placing.context.trace_id
    assert cancelled.traceparent == traceparent_naming(deadline)
