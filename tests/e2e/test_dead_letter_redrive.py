"""The operator CLI against the running system, run as a user runs it (`.venv/bin/ecommerce`, a
subprocess): a real dead letter makes a saga stuck, the operator fixes the cause and redrives it,
and the saga completes; a second redrive of the same record is absorbed; one past the limit is
refused. And `saga trace` of a plain order.

The cause is one an operator meets and can fix: a migration added a rule that the running code
breaks for some orders. Here a CHECK constraint on the order projection (added by the schema's
owner, NOT VALID so existing rows are not checked) refuses CONFIRMED for this test's customer alone:
the order worker's transaction for the order's PaymentProcessed fails on every retry and the record
is dead-lettered, while payment has charged and inventory has sold. Dropping the constraint is the
fix (the migration reverted); it is dropped in a `finally` whatever happens. (A payment gateway
outage does not dead-letter: gateway calls are retried by payment's executor outside the worker's
transaction, however long the outage lasts.)

Time matters: the order service cancels an order still waiting after its saga deadline (120 s), so
the redrive that completes the saga comes well before it.
"""

import asyncio
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from ecommerce_ops.apis import Endpoints, ServiceApis, operator_token
from ecommerce_ops.dlt import read_dead_letters
from ecommerce_ops.kafka_reading import KafkaReader
from ecommerce_ops.saga import stuck_orders, trace
from shared.events.topics import PAYMENT_EVENTS, dead_letter_topic
from shared.kafka.security import admin_client_config

from .conftest import REPO
from .dead_letters import BOOTSTRAP
from .invariants import assert_order_settled, assert_stock_conserved
from .storefront import Storefront, eventually

ECOMMERCE = REPO / ".venv/bin/ecommerce"
ORDER_OWNER_URL = os.environ.get("ORDER_OWNER_URL", "postgresql://order_owner:order_owner@127.0.0.1:5433/ecommerce")
SAGA_DEADLINE_S = 120
# The records that decide this saga's end (the reservation's may come before or after the payment's).
DECISIVE = {"PaymentProcessed", "OrderConfirmed"}


@dataclass(frozen=True)
class Run:
    code: int
    out: str  # with --json, the JSON alone
    err: str  # progress, the trace's "read N records" line, errors

    def __str__(self) -> str:
        return f"exit {self.code}\n{self.out}\n{self.err}"


async def ecommerce(*args: str, timeout: float = 90) -> Run:
    """Run the CLI as an operator would."""
    process = await asyncio.create_subprocess_exec(
        str(ECOMMERCE),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"},
        cwd=REPO,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        raise
    return Run(process.returncode or 0, out.decode(), err.decode())


class BadMigration:
    """A CHECK constraint that refuses CONFIRMED for one customer's orders, added and dropped as the
    order schema's owner (a short lock timeout, tried again: the table is busy)."""

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.name = f"e2e_redrive_{uuid.uuid4().hex[:10]}"

    async def _alter(self, statement: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            connection = await asyncpg.connect(ORDER_OWNER_URL)
            try:
                await connection.execute("SET lock_timeout = '2s'")
                await connection.execute(statement)
                return
            except asyncpg.LockNotAvailableError:
                if time.monotonic() > deadline:
                    raise
            finally:
                await connection.close()

    async def apply(self) -> None:
        await self._alter(
            f"ALTER TABLE orders.orders ADD CONSTRAINT {self.name} "
            f"CHECK (status <> 'CONFIRMED' OR customer_id <> '{self.customer_id}') NOT VALID"
        )

    async def revert(self) -> None:
        await self._alter(f"ALTER TABLE orders.orders DROP CONSTRAINT IF EXISTS {self.name}")


async def dead_letters_of(order_id: str) -> list[Any]:
    async with KafkaReader(BOOTSTRAP) as kafka:
        letters = await read_dead_letters(kafka, [dead_letter_topic(PAYMENT_EVENTS)])
    return [letter for letter in letters if letter.order_id == order_id]


async def committed(group: str, topic: str, partition: int) -> int:
    admin = AIOKafkaAdminClient(**admin_client_config(BOOTSTRAP), client_id="e2e-redrive")
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return next((meta.offset for tp, meta in offsets.items() if (tp.topic, tp.partition) == (topic, partition)), -1)


async def test_a_dead_letter_that_stuck_a_saga_is_redriven_once_the_cause_is_fixed_and_the_saga_completes(
    shop: Storefront,
) -> None:
    customer = f"e2e-redrive-{uuid.uuid4().hex[:8]}"
    sku = await shop.stock_product(available=5, unit_price=4200)
    migration = BadMigration(customer)
    await migration.apply()
    try:
        placed = await shop.place_order([(sku, 2)], customer_id=customer)
        order_id = placed["order_id"]
        started = time.monotonic()

        # The saga is stuck: charged and sold, but the order cannot be confirmed.
        (letter,) = await eventually(
            lambda: dead_letters_of(order_id), timeout=60, what="the order's PaymentProcessed dead-lettered"
        )
        assert letter.event_type == "PaymentProcessed"
        assert letter.consumer_group == "order-service"
        assert migration.name in letter.cause_message
        assert (await shop.order(order_id))["status"] == "AWAITING_PAYMENT"
        assert (await shop.payment(order_id))["status"] == "CHARGED"
        async with ServiceApis(Endpoints(), operator_token(None)) as apis, KafkaReader(BOOTSTRAP) as kafka:
            assert uuid.UUID(order_id) in await stuck_orders(apis, older_than_s=0, limit=1000)
            stuck = await trace(apis, kafka, uuid.UUID(order_id))
        assert stuck.last is not None and stuck.last.kind == "dead-letter", stuck.entries

        # Redriven before the fix: it fails again, and its new dead letter carries the count.
        run = await ecommerce("dlt", "redrive", "--event-id", letter.event_id, "--execute")
        assert run.code == 0, run
        again = await eventually(
            lambda: _with_count(order_id, 1), timeout=60, what="the redriven record dead-lettered again"
        )
        assert again.event_id == letter.event_id

        # The operator reverts the migration and redrives: the saga completes.
        await migration.revert()
        run = await ecommerce("dlt", "redrive", "--event-id", letter.event_id, "--execute", "--json")
        assert run.code == 0, run
        assert time.monotonic() - started < SAGA_DEADLINE_S, "redriven too late: the deadline may have ended it"
        redriven = json.loads(run.out)
        assert [r["redrive_count"] for r in redriven["redrives"]] == [1], "the latest dead letter is sent"
        assert len(redriven["superseded"]) == 1, "the first dead letter is not sent as well"
        order = await shop.wait_for_status(order_id, "CONFIRMED", timeout=60)
        await assert_order_settled(shop, order)
    finally:
        await migration.revert()

    # The same record redriven again is absorbed: no second confirmation, charge or sale.
    run = await ecommerce("dlt", "redrive", "--event-id", letter.event_id, "--execute", "--json")
    assert run.code == 0, run
    (landed,) = json.loads(run.out)["sent"]
    for group in ("order-service", "inventory-service"):
        await eventually(
            lambda group=group: _past(group, landed), timeout=60, what=f"{group} consumed the second redrive"
        )
    order = await shop.order(order_id)
    assert order["status"] == "CONFIRMED"
    payment, reservation = await assert_order_settled(shop, order)
    assert payment["amount"] == 2 * 4200
    assert reservation["status"] == "SOLD"
    await assert_stock_conserved(shop, {sku: 5}, [order])
    assert await dead_letters_of(order_id) == [letter, again], "nothing was dead-lettered since the fix"

    # Past the limit: refused, and nothing is sent.
    run = await ecommerce("dlt", "redrive", "--event-id", letter.event_id, "--max-redrives", "1", "--execute")
    assert run.code == 1, run
    assert "REFUSED" in run.out and "already redriven 1 time (limit 1)" in run.out, run

    # The timeline tells the story, in the order it happened.
    run = await ecommerce("saga", "trace", order_id, "--json")
    assert run.code == 0, run
    timeline = json.loads(run.out)["timeline"]
    assert timeline[0]["event_type"] == "OrderCreated"
    story = [(entry["kind"], entry["event_type"]) for entry in timeline if entry["event_type"] in DECISIVE]
    assert story == [
        ("event", "PaymentProcessed"),
        ("dead-letter", "PaymentProcessed"),
        ("redriven", "PaymentProcessed"),  # before the fix
        ("dead-letter", "PaymentProcessed"),
        ("redriven", "PaymentProcessed"),  # after it
        ("event", "OrderConfirmed"),
        ("redriven", "PaymentProcessed"),  # absorbed
    ], story


async def test_saga_trace_shows_a_confirmed_orders_events_in_order_and_the_three_services_state(
    shop: Storefront,
) -> None:
    sku = await shop.stock_product(available=3, unit_price=1500)
    placed = await shop.place_order([(sku, 1)])
    order = await shop.wait_until_terminal(placed["order_id"])
    assert order["status"] == "CONFIRMED"
    await assert_order_settled(shop, order)

    started = time.monotonic()
    run = await ecommerce("saga", "trace", order["order_id"])
    seconds = time.monotonic() - started

    assert run.code == 0, run
    output = run.out
    kinds = [match.group(1) for match in re.finditer(r"^\+ *-?\d+ ms +\S+ +(\S+)", output, re.MULTILINE)]
    # Payment charges while the order records the reservation: those two may come either way round.
    assert kinds[0] == "OrderCreated" and kinds[-1] == "OrderConfirmed", output
    assert sorted(kinds[1:-1]) == ["OrderUpdated", "PaymentProcessed", "StockReserved"], output
    assert "order: CONFIRMED total 15.00 EUR   payment: CHARGED   stock: SOLD" in output
    print(f"saga trace took {seconds:.1f} s (the process included)")


async def _with_count(order_id: str, count: int) -> Any:
    return next((letter for letter in await dead_letters_of(order_id) if letter.redrive_count == count), None)


async def _past(group: str, landed: dict) -> bool:
    return await committed(group, landed["topic"], landed["partition"]) > landed["offset"]
