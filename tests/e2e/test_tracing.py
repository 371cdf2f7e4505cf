"""One order is one trace across the three services (docs/architecture.md, "Traces"): every event of
a confirmed order's saga, read back from the three topics, names a span of the same trace, each
its own span (each hop a new span: the request, then the process span of the worker that handled
the cause, or the executor's gateway call), and every reaction names another span than its cause.
Over HTTP against the running system; the topics read as the admin."""

import asyncio
import os

from aiokafka import AIOKafkaConsumer, TopicPartition
from shared.events import Envelope
from shared.events.codec import decode, is_valid_traceparent
from shared.events.topics import EVENT_TOPICS, PARTITIONS
from shared.kafka.security import admin_client_config

from .storefront import Storefront

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096")
PARTITIONS_OF_EVENT_TOPICS = [TopicPartition(topic, n) for topic in EVENT_TOPICS for n in range(PARTITIONS)]
# The events of a confirmed order's saga, whichever service wrote them.
CONFIRMED_SAGA = {"OrderCreated", "StockReserved", "OrderUpdated", "PaymentProcessed", "OrderConfirmed"}


async def test_every_event_of_a_confirmed_order_carries_its_own_span_of_one_trace(shop: Storefront) -> None:
    consumer = AIOKafkaConsumer(**admin_client_config(BOOTSTRAP), enable_auto_commit=False, client_id="e2e-tracing")
    await consumer.start()
    try:
        start = await consumer.end_offsets(PARTITIONS_OF_EVENT_TOPICS)
        sku = await shop.stock_product(available=5, unit_price=1500)
        placed = await shop.place_order([(sku, 1)], token="tok_visa")
        order = await shop.wait_until_terminal(placed["order_id"])
        assert order["status"] == "CONFIRMED"
        events = await saga_events(consumer, start, order["order_id"], CONFIRMED_SAGA)
    finally:
        await consumer.stop()

    traceparents = {envelope.event_type: envelope.traceparent for envelope in events}
    assert all(tp is not None and is_valid_traceparent(tp) for tp in traceparents.values()), traceparents
    trace_ids = {tp.split("-")[1] for tp in traceparents.values() if tp}
    span_ids = [tp.split("-")[2] for tp in traceparents.values() if tp]
    assert len(trace_ids) == 1, traceparents
    assert len(set(span_ids)) == len(span_ids), traceparents
    by_id = {envelope.event_id: envelope for envelope in events}
    for envelope in events:
        cause = by_id.get(envelope.causation_id) if envelope.causation_id else None
        if cause is not None:
            assert envelope.traceparent != cause.traceparent, (envelope.event_type, cause.event_type)


async def saga_events(
    consumer: AIOKafkaConsumer, start: dict[TopicPartition, int], order_id: str, wanted: set[str]
) -> list[Envelope]:
    """The order's events published since `start` on the three topics, once all `wanted` types are in."""
    consumer.assign(list(start))
    for tp, offset in start.items():
        consumer.seek(tp, offset)
    found: list[Envelope] = []
    async with asyncio.timeout(60):
        while not wanted <= {envelope.event_type for envelope in found}:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if record.key == order_id.encode():
                        found.append(decode(record.value, record.headers or ()))
    return found
