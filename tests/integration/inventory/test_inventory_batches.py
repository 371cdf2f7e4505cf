"""The inventory's handlers as the worker runs a batch of one partition's records: one transaction
for many events, against the real Postgres."""

import asyncio
import uuid

import pytest
from aiokafka.structs import ConsumerRecord
from inventory_service.service_layer.handlers import lock_batch, reserve_stock
from shared.consumer.retry import is_concurrency_conflict
from shared.consumer.transaction import BatchFailed, BatchLocker, apply_batch, decode_batch
from shared.events import Envelope
from shared.events.codec import encode
from sqlalchemy.ext.asyncio import AsyncSession

pytestmark = pytest.mark.infra


def as_records(envelopes: list[Envelope]) -> list[ConsumerRecord]:
    """The envelopes as a worker receives them from one partition."""
    records = []
    for offset, envelope in enumerate(envelopes):
        kafka = encode(envelope)
        records.append(ConsumerRecord(kafka.topic, 0, offset, 0, 0, kafka.key, kafka.value, None, 0, 0, kafka.headers))
    return records


async def slow_reserve(session: AsyncSession, envelope: Envelope) -> None:
    """The real handler, then a pause: both batches take their first lock before either wants its
    second, the interleaving that deadlocks batches that lock record by record."""
    await reserve_stock(session, envelope)
    await asyncio.sleep(0.5)


async def run_two_crossing_batches(sessions, new_sku, add_product, order_created, locker: BatchLocker | None):
    mug, tee = new_sku("MUG"), new_sku("TEE")
    await add_product(mug, available=10)
    await add_product(tee, available=10)
    first = as_records([order_created({mug: 1}), order_created({tee: 1})])
    second = as_records([order_created({tee: 1}), order_created({mug: 1})])
    handlers = {"OrderCreated": slow_reserve}
    consumer = f"it-batches-{uuid.uuid4().hex[:8]}"
    outcomes = await asyncio.gather(
        *(
            apply_batch(sessions, consumer, decode_batch(records, handlers) or [], lambda: False, locker)
            for records in (first, second)
        ),
        return_exceptions=True,
    )
    return mug, tee, outcomes


async def test_batches_that_lock_record_by_record_deadlock_when_they_cross(
    sessions, new_sku, add_product, order_created
):
    _, _, outcomes = await run_two_crossing_batches(sessions, new_sku, add_product, order_created, locker=None)

    failures = [outcome for outcome in outcomes if isinstance(outcome, BatchFailed)]
    assert len(failures) == 1, outcomes
    assert is_concurrency_conflict(failures[0].cause), failures[0].cause


async def test_batches_that_take_their_locks_up_front_never_deadlock_when_they_cross(
    sessions, new_sku, add_product, order_created, stock
):
    mug, tee, outcomes = await run_two_crossing_batches(
        sessions, new_sku, add_product, order_created, locker=lock_batch
    )

    assert not [outcome for outcome in outcomes if isinstance(outcome, BaseException)], outcomes
    assert await stock(mug) == (8, 2, 0)
    assert await stock(tee) == (8, 2, 0)
