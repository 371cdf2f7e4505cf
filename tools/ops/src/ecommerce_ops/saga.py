"""`saga trace` and `saga stuck`: an order's timeline across the three topics and their dead-letter
topics, with the three services' state of it; the orders still waiting for an answer, and where
each stopped.

Reading whole topics would take minutes on a long-lived cluster. Every saga event is keyed by its
order id and the three topics (and their DLTs, whose dead letters keep their partition) have the
same partition count, so the order's records are in one partition of each, computed as the
producers compute it; and none is older than the order, so each partition is read from the offset
of the order's placing time (less a margin for clocks) up to its end when the command started.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from shared.events.topics import EVENT_TOPICS, dead_letter_topic

from .apis import AWAITING_AN_ANSWER, ServiceApis
from .kafka_reading import KafkaReader, ranges_since, read_ranges
from .timeline import TimelineEntry, timeline

SAGA_TOPICS = (*EVENT_TOPICS, *(dead_letter_topic(topic) for topic in EVENT_TOPICS))
# Records are stamped by the producer's clock, the order by the database's: read from a little
# before the order, so a clock a few seconds behind loses nothing.
CLOCK_MARGIN = timedelta(seconds=60)


class OrderNotFound(LookupError):
    pass


@dataclass(frozen=True)
class SagaTrace:
    order_id: UUID
    order: dict[str, Any] | None
    payment: dict[str, Any] | None
    reservation: dict[str, Any] | None
    entries: list[TimelineEntry] = field(default_factory=list)
    records_read: int = 0

    @property
    def last(self) -> TimelineEntry | None:
        return self.entries[-1] if self.entries else None


async def trace(
    apis: ServiceApis, kafka: KafkaReader, order_id: UUID, *, topics: tuple[str, ...] = SAGA_TOPICS
) -> SagaTrace:
    """The order's timeline and the services' state of it. Raises OrderNotFound if the order
    service does not know the order."""
    order = await apis.order(order_id)
    if order is None:
        raise OrderNotFound(f"the order service knows no order {order_id}")
    placed_at = datetime.fromisoformat(order["created_at"])
    key = str(order_id).encode()
    partitions = await kafka.key_partitions(topics, str(order_id))
    ranges = await ranges_since(kafka.consumer, partitions, placed_at - CLOCK_MARGIN)
    read = 0

    def count(records: int) -> None:
        nonlocal read
        read += records

    records = await read_ranges(kafka.consumer, ranges, keep=lambda record: record.key == key, progress=count)
    return SagaTrace(
        order_id=order_id,
        order=order,
        payment=await apis.payment(order_id),
        reservation=await apis.reservation(order_id),
        entries=timeline(records),
        records_read=read,
    )


async def stuck_orders(
    apis: ServiceApis, *, older_than_s: float, limit: int, now: datetime | None = None
) -> list[UUID]:
    """Orders still waiting for an answer (PENDING, AWAITING_PAYMENT) placed more than `older_than_s`
    seconds ago, oldest first, at most `limit`."""
    before = (now or datetime.now(UTC)) - timedelta(seconds=older_than_s)
    found: list[dict[str, Any]] = []
    for status in AWAITING_AN_ANSWER:
        found += await apis.orders_placed_before(status, before, limit=limit)
    found.sort(key=lambda order: order["created_at"])
    return [UUID(order["order_id"]) for order in found[:limit]]
