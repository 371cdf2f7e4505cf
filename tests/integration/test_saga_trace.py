"""One trace id spans every hop of a confirmed saga (docs/architecture.md, "Traces"), with the spans
kept in memory (the SDK's InMemorySpanExporter): the order API in process places the order, and
each service's worker transaction (`apply_one`, the worker's own path, its process span included)
handles the events the hop before wrote to its outbox, as each worker would get them from Kafka;
the payment executor makes the charge. Against the real Postgres; the Kafka hop itself (the relay's
span, the record's header) is tests/integration/machinery/test_tracing_hops.py's.

The running stack shares the schemas, so every outbox row this test writes is marked published in
its own transaction (the running relays never send it, the running saga never hears of this
order), the product is the test's own, and the charge is made at a gateway name of the test's own
(the running executor claims only its gateway's intents)."""

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from inventory_service.domain import CatalogEntry
from inventory_service.service_layer.commands import PutProduct
from inventory_service.service_layer.handlers import build_handlers as inventory_handlers
from inventory_service.service_layer.handlers import put_product
from inventory_service.settings import Settings as InventorySettings
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from order_service.entrypoints.api import create_app as order_api
from order_service.service_layer.handlers import build_handlers as order_handlers
from order_service.settings import Settings as OrderSettings
from payment_service.domain import TestCardGateway
from payment_service.entrypoints.executor import GatewayExecutor
from payment_service.service_layer.handlers import build_handlers as payment_handlers
from payment_service.settings import Settings as PaymentSettings
from recorded_spans import recorded_spans, traceparent_naming
from sealed_tokens import opener
from shared.consumer import Consumption
from shared.consumer.transaction import apply_one
from shared.events import Envelope
from shared.events.codec import decode
from shared.outbox.tables import outbox
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def sessions(migrate, service_sessions) -> dict[str, async_sessionmaker[AsyncSession]]:
    for service in ("order", "inventory", "payment"):
        migrate(service)
    return {
        "order": service_sessions(OrderSettings()),
        "inventory": service_sessions(InventorySettings()),
        "payment": service_sessions(PaymentSettings()),
    }


def _unpublishable(session: Any) -> None:
    session.execute(
        text("UPDATE outbox SET published_at = now() WHERE published_at IS NULL AND xmin = pg_current_xact_id()::xid")
    )


@pytest.fixture
def outbox_rows_kept_from_the_running_relays() -> Iterator[None]:
    event.listen(Session, "before_commit", _unpublishable)
    try:
        yield
    finally:
        event.remove(Session, "before_commit", _unpublishable)


@pytest.fixture
async def order_app(sessions, outbox_rows_kept_from_the_running_relays) -> AsyncIterator[Any]:
    app = order_api(OrderSettings())
    async with app.router.lifespan_context(app):
        yield app


async def outbox_of(sessions: async_sessionmaker[AsyncSession], order_id: str) -> list[Envelope]:
    async with sessions() as session:
        rows = await session.execute(
            select(outbox.c.value, outbox.c.headers).where(outbox.c.key == order_id).order_by(outbox.c.id)
        )
        return [decode(row.value, [(k, v.encode()) for k, v in row.headers.items()]) for row in rows]


async def handled(sessions: async_sessionmaker[AsyncSession], consumption: Consumption, *envelopes: Envelope) -> None:
    """Each envelope handled as a worker handles a record (its own transaction and process span)."""
    consumer = f"it-saga-trace-{uuid.uuid4().hex[:8]}"
    for envelope in envelopes:
        handler = consumption.handlers[envelope.event_type]
        assert await apply_one(sessions, consumer, envelope, handler, consumption.open_batch) == "processed"


async def test_one_trace_id_spans_every_hop_of_a_confirmed_saga(sessions, order_app, caller_of):
    spans = recorded_spans()
    sku = f"TRACE-{uuid.uuid4().hex[:10]}"
    async with sessions["inventory"]() as session:
        await put_product(session, PutProduct(sku, CatalogEntry(f"Product {sku}", 1500, "EUR", 5, 0)))
    customer = f"it-trace-{uuid.uuid4().hex[:8]}"
    gateway = f"it-trace-gateway-{uuid.uuid4().hex[:8]}"

    async with caller_of(order_app, customer, "customer") as api:
        response = await api.post("/orders", json={"items": [{"sku": sku, "quantity": 1}], "payment_token": "tok_visa"})
    assert response.status_code == 202, response.text
    order_id = response.json()["order_id"]
    (created,) = await outbox_of(sessions["order"], order_id)

    await handled(sessions["inventory"], inventory_handlers(), created)
    (reserved,) = await outbox_of(sessions["inventory"], order_id)
    await handled(sessions["payment"], payment_handlers(gateway, opener()), created, reserved)
    executor = GatewayExecutor(
        PaymentSettings(), sessions["payment"], TestCardGateway(), gateway_name=gateway, opener=opener()
    )
    while await executor.start_due_calls():
        await executor.drain()
    (processed,) = await outbox_of(sessions["payment"], order_id)
    await handled(sessions["order"], order_handlers(), reserved, processed)

    events = {e.event_type: e for service in sessions.values() for e in await outbox_of(service, order_id)}
    assert set(events) == {"OrderCreated", "StockReserved", "PaymentProcessed", "OrderUpdated", "OrderConfirmed"}
    (request,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    trace_id = request.context.trace_id
    in_trace = {s.context.span_id: s for s in spans.get_finished_spans() if s.context.trace_id == trace_id}
    # Every event names a span of the one trace: the span of the hop that wrote it.
    writer = {name: span_named_by(in_trace, envelope) for name, envelope in events.items()}
    assert writer["OrderCreated"] is request
    assert (writer["StockReserved"].name, writer["StockReserved"].kind) == ("process order-events", SpanKind.CONSUMER)
    assert writer["PaymentProcessed"].name == f"charge {gateway}"
    assert writer["OrderUpdated"].name == "process inventory-events"
    assert writer["OrderConfirmed"].name == "process payment-events"
    # And every span of the trace leads back to the request: one tree, hop by hop.
    for span in in_trace.values():
        assert root_of(span, in_trace) is request, span.name


def span_named_by(spans: dict[int, ReadableSpan], envelope: Envelope) -> ReadableSpan:
    assert envelope.traceparent is not None, envelope.event_type
    matching = [span for span in spans.values() if traceparent_naming(span) == envelope.traceparent]
    assert len(matching) == 1, (envelope.event_type, envelope.traceparent)
    return matching[0]


def root_of(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> ReadableSpan:
    while span.parent is not None:
        span = spans[span.parent.span_id]
    return span
