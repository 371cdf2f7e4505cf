"""Traces through the machinery, against the real Postgres and Kafka (docs/architecture.md,
"Traces"): the relay publishes a row in the trace its row holds, and the worker handles a record in
a span that is the child of the record's traceparent, whose context the events it emits carry.
The spans are kept in memory (recorded_spans); nothing is mocked."""

import uuid

import pytest
from machinery_support import alert, header, published_records, unique_keys
from opentelemetry.trace import SpanKind
from recorded_spans import recorded_spans, spans_named, trace_and_span_ids, traceparent_naming
from shared.consumer import EventWorker, SessionBatch
from shared.events import Envelope, LowStockAlert
from shared.events.topics import INVENTORY_EVENTS
from shared.outbox.writer import outbox_row

pytestmark = [pytest.mark.infra, pytest.mark.timeout(120)]


def new_traceparent() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


def in_trace(envelope: Envelope, traceparent: str) -> Envelope:
    return envelope.model_copy(update={"traceparent": traceparent})


async def test_the_relay_publishes_a_row_in_a_span_child_of_the_rows_traceparent_and_the_record_keeps_it(
    kafka, publish
):
    spans = recorded_spans()
    (sku,) = unique_keys(1)
    traceparent = new_traceparent()
    event = in_trace(alert(sku), traceparent)
    start = await kafka.end_offsets(INVENTORY_EVENTS)

    (record,) = await published_records(kafka, publish, start, event)

    assert header(record, "traceparent") == traceparent.encode()
    (published,) = [
        span
        for span in spans_named(spans, f"publish {INVENTORY_EVENTS}")
        if span.attributes and span.attributes["messaging.message.id"] == str(event.event_id)
    ]
    trace_id, span_id = trace_and_span_ids(traceparent)
    assert published.kind is SpanKind.CLIENT
    assert published.context.trace_id == trace_id
    assert published.parent is not None and published.parent.span_id == span_id
    assert published.status.is_ok


async def test_a_row_of_a_trace_not_sampled_is_published_without_a_span_and_keeps_its_traceparent(kafka, publish):
    spans = recorded_spans()
    (sku,) = unique_keys(1)
    unsampled = new_traceparent()[:-2] + "00"
    start = await kafka.end_offsets(INVENTORY_EVENTS)

    (record,) = await published_records(kafka, publish, start, in_trace(alert(sku), unsampled))

    assert header(record, "traceparent") == unsampled.encode()
    assert spans_named(spans, f"publish {INVENTORY_EVENTS}") == []


async def test_each_record_of_a_batch_is_processed_in_its_own_span_and_its_emitted_events_continue_that_span(
    db, make_settings, kafka, publish, background
):
    spans = recorded_spans()
    skus = unique_keys(3)
    traceparents = {sku: new_traceparent() for sku in skus}
    causes = [in_trace(alert(sku), traceparents[sku]) for sku in skus]
    start = await kafka.end_offsets(INVENTORY_EVENTS)
    records = await published_records(kafka, publish, start, *causes)
    settings = make_settings()
    await kafka.place_group(settings.group_id, start)

    async def react(batch: SessionBatch, envelope: Envelope) -> None:
        cause = envelope.event
        assert isinstance(cause, LowStockAlert)
        batch.emit(Envelope.new(LowStockAlert(sku=cause.sku, available=0, reorder_level=1), caused_by=envelope))

    worker = background.start(EventWorker(settings, db.sessions, {"LowStockAlert": react}, [INVENTORY_EVENTS]).run)
    await kafka.wait_committed_past(settings.group_id, records, worker)
    await worker.stopped()

    emitted = {
        row.key: row.headers["traceparent"]
        for row in await db.fetch("SELECT key, headers FROM outbox WHERE key = ANY(:skus)", skus=skus)
        if row.headers.get("causationId") is not None
    }
    processed = {
        span.attributes["messaging.kafka.message.key"]: span
        for span in spans_named(spans, f"process {INVENTORY_EVENTS}")
        if span.attributes and span.attributes["messaging.kafka.message.key"] in skus
    }
    assert set(emitted) == set(processed) == set(skus)
    for sku in skus:
        trace_id, span_id = trace_and_span_ids(traceparents[sku])
        span = processed[sku]
        assert span.kind is SpanKind.CONSUMER
        assert span.parent is not None and span.parent.span_id == span_id
        assert span.context.trace_id == trace_id
        assert span.attributes is not None and span.attributes["messaging.consumer.group.name"] == settings.group_id
        # The event this record caused names this record's process span: its own order's trace.
        assert emitted[sku] == traceparent_naming(span)


def test_an_outbox_row_stores_the_envelopes_traceparent_in_its_headers():
    traceparent = new_traceparent()
    assert outbox_row(in_trace(alert("SKU-T"), traceparent))["headers"]["traceparent"] == traceparent
