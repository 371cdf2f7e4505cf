"""The inventory's worker transactions with many events, against the real Postgres: the batch loads
and locks up front what its events touch, the handlers work on that state in memory, the flush
writes back what changed. A batch ends as handling its events one at a time does, in as many
statements for fifty events as for one, and never deadlocks with another."""

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from inventory_service.service_layer.handlers import release_stock, reserve_stock
from inventory_service.service_layer.unit_of_work import open_batch
from pydantic_core import to_jsonable_python
from shared.consumer.retry import is_concurrency_conflict
from shared.consumer.transaction import BatchFailed, BatchOpener, Handler, apply_batch, decode_batch, open_session_batch
from shared.events import Envelope, OrderCancelled, PaymentProcessed
from shared.outage import sqlstates_in_chain

pytestmark = pytest.mark.infra

UNIQUE_VIOLATION = "23505"
RESERVATION_FIELDS = ("status", "currency", "total_amount", "lines", "failures")


def cancelled(order_id: uuid.UUID) -> Envelope:
    return Envelope.new(OrderCancelled(order_id=order_id, reason="customer_request"))


def paid(order_id: uuid.UUID) -> Envelope:
    event = PaymentProcessed(order_id=order_id, payment_id=uuid.uuid4(), amount=1000, currency="EUR")
    return Envelope.new(event)


class Scenario:
    """One world of the mixed batch: its own SKUs and orders (fresh ids), named by symbols so two
    worlds can be compared. `before` is committed first; `batch` is what the test handles."""

    SKUS = {"A": {"available": 10, "reorder_level": 5}, "B": {"available": 3}, "C": {"available": 100}}
    ORDERS = ("P1", "P2", "P3", "O1", "O2", "O3", "O4", "O5", "O6", "O7", "O8", "O9", "O10")

    def __init__(self, new_sku: Callable[[str], str], order_created: Callable[..., Envelope]) -> None:
        self.skus = {symbol: new_sku(symbol) for symbol in self.SKUS}
        self.orders = {symbol: uuid.uuid4() for symbol in self.ORDERS}
        unknown = new_sku("UNKNOWN")
        self.names = {**self.skus, **{symbol: str(order_id) for symbol, order_id in self.orders.items()}, "?": unknown}

        def created(order: str, lines: dict[str, int]) -> Envelope:
            return order_created({self.names[sku]: n for sku, n in lines.items()}, order_id=self.orders[order])

        self.before = [created("P1", {"A": 1}), created("P2", {"B": 1}), created("P3", {"C": 2})]
        o = self.orders
        twice = created("O2", {"A": 2})
        # A: 9 available to start with (P1 holds 1), reorder level 5. B: 2 available (P2 holds 1).
        self.batch = [
            created("O1", {"A": 3, "B": 1}),  # A 6, B 1
            paid(o["P1"]),  # P1's unit of A sold
            twice,  # A 4: below the reorder level, alert
            twice,  # the same event again: applied once
            cancelled(o["O1"]),  # the same order twice in the batch: A 7 (above again), B 2
            created("O3", {"B": 3}),  # B short: FAILED
            created("O4", {"A": 3, "?": 1}),  # an unknown SKU: FAILED, A untouched
            cancelled(o["O5"]),  # never seen: a tombstone
            created("O5", {"A": 1}),  # after its cancellation: nothing
            paid(o["O5"]),  # a tombstone sells nothing
            created("O6", {"A": 3}),  # A 4: below again, a second alert
            paid(o["O6"]),  # sold
            cancelled(o["O6"]),  # sold units back: A 7
            created("O7", {"A": 1}),  # A 6
            cancelled(o["P2"]),  # B 3
            created("O1", {"C": 1}),  # the same order told again: nothing
            paid(o["O2"]),  # O2's units of A sold
            paid(o["O8"]),  # an order inventory never saw: nothing
            created("O9", {"C": 2, "A": 1}),  # A 5: not below 5
            created("O10", {"A": 1}),  # A 4: below, a third alert
        ]
        self.steps: dict[str, str] = {}
        for n, envelope in enumerate([*self.before, *self.batch]):
            self.steps.setdefault(str(envelope.event_id), f"step {n}")

    def symbolic(self, value: Any) -> Any:
        """`value` with this world's ids replaced by their symbols, comparable with another world's."""
        text = json.dumps(value, default=to_jsonable_python, sort_keys=True)
        for symbol, name in [*self.names.items(), *((symbol, eid) for eid, symbol in self.steps.items())]:
            text = text.replace(name, symbol)
        return json.loads(text)

    async def state(self, stock, reservation, outbox_events) -> Any:
        reservations = {}
        for symbol, order_id in self.orders.items():
            row = await reservation(order_id)
            reservations[symbol] = row and {
                k: getattr(row, k) for k in ("status", "currency", "total_amount", "items", "failures")
            }
        outboxes = {}
        for symbol, key in [*self.skus.items(), *self.orders.items()]:
            outboxes[symbol] = [
                (e.event_type, e.event.model_dump(mode="json"), e.causation_id) for e in await outbox_events(key)
            ]
        stocks = {symbol: await stock(sku) for symbol, sku in self.skus.items()}
        return self.symbolic({"stock": stocks, "reservations": reservations, "outbox": outboxes})


@pytest.fixture
def world(new_sku, order_created, add_product, handle) -> Callable[[], Awaitable[Scenario]]:
    async def build() -> Scenario:
        scenario = Scenario(new_sku, order_created)
        for symbol, stock in Scenario.SKUS.items():
            await add_product(scenario.skus[symbol], **stock)
        for envelope in scenario.before:
            await handle(envelope)
        return scenario

    return build


async def test_a_batch_of_many_orders_mixed_events_ends_as_handling_them_one_at_a_time_does(
    world, handle, stock, reservation, outbox_events
):
    alone, together = await world(), await world()
    for envelope in alone.batch:
        await handle(envelope)

    await handle(*together.batch)

    expected = await alone.state(stock, reservation, outbox_events)
    got = await together.state(stock, reservation, outbox_events)
    assert got == expected
    assert got["stock"] == {"A": [4, 3, 3], "B": [3, 0, 0], "C": [96, 4, 0]}
    statuses = {order: row and row["status"] for order, row in got["reservations"].items()}
    assert statuses == {
        "P1": "SOLD", "P2": "RELEASED", "P3": "RESERVED", "O1": "RELEASED", "O2": "SOLD", "O3": "FAILED",
        "O4": "FAILED", "O5": "RELEASED", "O6": "RELEASED", "O7": "RESERVED", "O8": None, "O9": "RESERVED",
        "O10": "RESERVED",
    }  # fmt: skip


async def test_a_batch_alerts_once_each_time_a_product_falls_below_its_reorder_level(world, handle, outbox_events):
    scenario = await world()

    await handle(*scenario.batch)

    alerts = [[e.event.model_dump(mode="json"), e.causation_id] for e in await outbox_events(scenario.skus["A"])]
    assert scenario.symbolic(alerts) == [
        [{"sku": "A", "available": 4, "reorder_level": 5}, "step 5"],  # O2 (its repeated event is a duplicate)
        [{"sku": "A", "available": 4, "reorder_level": 5}, "step 13"],  # O6, after O1's cancellation lifted A
        [{"sku": "A", "available": 4, "reorder_level": 5}, "step 22"],  # O10, after O6's cancellation and O7, O9
    ]


@pytest.mark.parametrize("kind", ["OrderCreated", "OrderCancelled", "PaymentProcessed", "mixed"])
async def test_a_batch_of_fifty_events_runs_as_many_statements_as_a_batch_of_one(
    kind, new_sku, add_product, order_created, handle, count_statements
):
    skus = [new_sku(f"S{n}") for n in range(10)]
    for sku in skus:
        await add_product(sku, available=1000, reorder_level=990)  # the fifty orders' reservations cross it
    held = [order_created({skus[n % 10]: 1, skus[(n + 3) % 10]: 2}) for n in range(51)]
    await handle(*held)  # also warms the connection up: the counts below are the batches' own

    def events(orders: list[Envelope]) -> list[Envelope]:
        fresh = [order_created({skus[n % 10]: 1, skus[(n + 7) % 10]: 1}) for n in range(len(orders))]
        if kind == "OrderCreated":
            return fresh
        if kind == "OrderCancelled":
            return [cancelled(order.event.order_id) for order in orders]
        if kind == "PaymentProcessed":
            return [paid(order.event.order_id) for order in orders]
        return [mixed(n, fresh, orders) for n in range(len(orders))]

    with count_statements() as one:
        await handle(*events(held[:1]))
    with count_statements() as fifty:
        await handle(*events(held[1:51]))

    if kind != "mixed":  # one event cannot be of every kind
        assert fifty == one, (one, fifty)  # the same texts, which the driver prepares once per connection
    assert len(fifty) <= 7, fifty  # claim, two loads, three writes, the outbox


def mixed(n: int, fresh: list[Envelope], held: list[Envelope]) -> Envelope:
    """In every four events: a fresh order created, a held one paid, that one cancelled, the fresh one cancelled."""
    if n % 4 == 0:
        return fresh[n]
    if n % 4 == 1:
        return paid(held[n].event.order_id)
    if n % 4 == 2:
        return cancelled(held[n - 1].event.order_id)
    return cancelled(fresh[n - 3].event.order_id)


def slow(handler: Handler) -> Handler:
    """The real handler, then a pause: both batches take their first lock before either wants its
    second, the interleaving that deadlocks batches that lock record by record."""

    async def handle_slowly(batch: Any, envelope: Envelope) -> None:
        await handler(batch, envelope)
        await asyncio.sleep(0.5)

    return handle_slowly


async def reserve_record_by_record(batch: Any, envelope: Envelope) -> None:
    """Each record opens its own batch: its locks are taken when it comes, not with the batch's."""
    own = await open_batch(batch.session, [envelope])
    await reserve_stock(own, envelope)
    await own.flush()
    await asyncio.sleep(0.5)


async def run_two_crossing_batches(
    sessions, new_sku, add_product, order_created, as_records, handler, opener: BatchOpener
):
    mug, tee = new_sku("MUG"), new_sku("TEE")
    await add_product(mug, available=10)
    await add_product(tee, available=10)
    first = as_records([order_created({mug: 1}), order_created({tee: 1})])
    second = as_records([order_created({tee: 1}), order_created({mug: 1})])
    handlers = {"OrderCreated": handler}
    consumer = f"it-batches-{uuid.uuid4().hex[:8]}"
    outcomes = await asyncio.gather(
        *(
            apply_batch(sessions, consumer, decode_batch(records, handlers) or [], opener)
            for records in (first, second)
        ),
        return_exceptions=True,
    )
    return mug, tee, outcomes


async def test_batches_that_lock_record_by_record_deadlock_when_they_cross(
    sessions, new_sku, add_product, order_created, as_records
):
    _, _, outcomes = await run_two_crossing_batches(
        sessions, new_sku, add_product, order_created, as_records, reserve_record_by_record, open_session_batch
    )

    failures = [outcome for outcome in outcomes if isinstance(outcome, BatchFailed)]
    assert len(failures) == 1, outcomes
    assert is_concurrency_conflict(failures[0].cause), failures[0].cause


async def test_batches_that_take_their_locks_up_front_never_deadlock_when_they_cross(
    sessions, new_sku, add_product, order_created, as_records, stock
):
    mug, tee, outcomes = await run_two_crossing_batches(
        sessions, new_sku, add_product, order_created, as_records, slow(reserve_stock), open_batch
    )

    assert not [outcome for outcome in outcomes if isinstance(outcome, BaseException)], outcomes
    assert await stock(mug) == (8, 2, 0)
    assert await stock(tee) == (8, 2, 0)


async def test_two_transactions_that_both_create_an_orders_reservation_commit_only_one(
    sessions, new_sku, add_product, order_created, as_records, handle, stock, reservation
):
    """A new order's reservation has no row to lock when the batch opens: the batch inserts it at
    flush, and a concurrent transaction that inserted it first makes that insert fail, so the batch
    rolls back (to be handled again one record at a time, which finds the row)."""
    sku = new_sku()
    await add_product(sku, available=5)
    late = order_created({sku: 2})  # a redriven OrderCreated, handled while its cancellation is too
    order_id = late.event.order_id
    tombstoned = asyncio.Event()

    async def reserve_then_wait(batch: Any, envelope: Envelope) -> None:
        await reserve_stock(batch, envelope)
        await tombstoned.wait()  # the other transaction commits the order's row meanwhile

    async def reserving() -> None:
        items = decode_batch(as_records([late]), {"OrderCreated": reserve_then_wait})
        await apply_batch(sessions, f"it-race-{uuid.uuid4().hex[:8]}", items or [], open_batch)

    async def cancelling() -> None:
        try:
            await apply_batch(
                sessions,
                f"it-race-{uuid.uuid4().hex[:8]}",
                decode_batch(as_records([cancelled(order_id)]), {"OrderCancelled": release_stock}) or [],
                open_batch,
            )
        finally:
            tombstoned.set()

    reserved, tombstoning = await asyncio.gather(reserving(), cancelling(), return_exceptions=True)

    assert tombstoning is None, tombstoning
    assert isinstance(reserved, BatchFailed) and UNIQUE_VIOLATION in sqlstates_in_chain(reserved.cause), reserved
    assert await stock(sku) == (5, 0, 0)
    await handle(late)  # the worker's one-at-a-time retry
    assert await stock(sku) == (5, 0, 0)
    assert (await reservation(order_id)).status == "RELEASED"
