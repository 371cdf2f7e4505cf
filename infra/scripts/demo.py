"""The `make run` demo: seed a small catalog, place four orders (confirmed, declined, out of stock,
cancelled after confirmation) and print each order's saga as a timeline of the events that every
service published about it, read back from the three Kafka topics.

It calls the APIs as their users would: an admin stocks the catalog and reads the reservations, the
customer `demo-customer` places, follows and cancels its own orders, each with its own token
(minted as `make token` mints them)."""

import asyncio
import os
import sys
import time
import uuid

import httpx
from aiokafka import TopicPartition
from dev_token import mint_token
from ecommerce_ops.kafka_reading import KafkaReader, read_ranges
from ecommerce_ops.timeline import TimelineEntry, format_state, format_timeline, money, timeline
from shared.events.topics import EVENT_TOPICS

ORDERS = os.environ.get("ORDER_URL", "http://127.0.0.1:8001")
PAYMENTS = os.environ.get("PAYMENT_URL", "http://127.0.0.1:8002")
INVENTORY = os.environ.get("INVENTORY_URL", "http://127.0.0.1:8003")
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096")

CATALOG = {
    "KB-101": ("Mechanical keyboard", 8999, 25, 5),
    "MS-202": ("Wireless mouse", 2499, 40, 10),
    "MN-303": ("4K monitor", 32900, 2, 1),
}
SCENARIOS = [
    ("confirmed", [("KB-101", 1), ("MS-202", 2)], "tok_visa", False),
    ("declined card", [("MS-202", 1)], "tok_chargeDeclined", False),
    ("out of stock", [("MN-303", 5)], "tok_visa", False),
    ("cancelled after confirmation", [("KB-101", 1)], "tok_mastercard", True),
]
TERMINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}
SETTLED_PAYMENT = {"CHARGED", "DECLINED", "REFUNDED", "VOIDED"}
CUSTOMER = "demo-customer"
AS_CUSTOMER = {"Authorization": f"Bearer {mint_token(CUSTOMER, 'customer')}"}
AS_ADMIN = {"Authorization": f"Bearer {mint_token('demo-admin', 'admin')}"}


async def end_offsets() -> dict[TopicPartition, int]:
    async with KafkaReader(BOOTSTRAP) as kafka:
        return await kafka.consumer.end_offsets([tp for topic in EVENT_TOPICS for tp in await kafka.partitions(topic)])


async def saga_entries(start: dict[TopicPartition, int], order_ids: set[str]) -> list[TimelineEntry]:
    """Every saga event about these orders published since `start`, from all three topics, as the
    operator CLI's timeline (`ecommerce saga trace` shows one order's the same way)."""
    async with KafkaReader(BOOTSTRAP) as kafka:
        end = await kafka.consumer.end_offsets(list(start))
        ranges = {tp: (first, end[tp]) for tp, first in start.items() if end[tp] > first}
        entries = timeline(await read_ranges(kafka.consumer, ranges))
    return [entry for entry in entries if entry.correlation_id in order_ids]


async def wait_settled(client: httpx.AsyncClient, order_id: str, cancel_when_confirmed: bool) -> dict:
    deadline = time.monotonic() + 60
    cancelled = False
    while time.monotonic() < deadline:
        order = (await client.get(f"{ORDERS}/orders/{order_id}", headers=AS_CUSTOMER)).json()
        if order["status"] == "CONFIRMED" and cancel_when_confirmed and not cancelled:
            await client.post(f"{ORDERS}/orders/{order_id}/cancel", headers=AS_CUSTOMER)
            cancelled = True
            continue
        payment = (await client.get(f"{PAYMENTS}/payments/{order_id}", headers=AS_CUSTOMER)).json()
        reservation = (await client.get(f"{INVENTORY}/reservations/{order_id}", headers=AS_ADMIN)).json()
        settled = (
            payment.get("status") in {"CHARGED", "DECLINED", "REFUNDED", "VOIDED"} or order["status"] == "REJECTED"
        )
        if order["status"] in TERMINAL and settled and reservation.get("status") not in (None, "RESERVED"):
            if not (cancel_when_confirmed and payment.get("status") == "CHARGED"):
                return {"order": order, "payment": payment, "reservation": reservation}
        await asyncio.sleep(0.2)
    raise TimeoutError(f"order {order_id} did not settle in 60 s; see `make status` and .run/logs")


async def main() -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        print("\n== Catalog (inventory service, PUT /products/{sku})")
        for sku, (name, price, available, reorder_level) in CATALOG.items():
            response = await client.put(
                f"{INVENTORY}/products/{sku}",
                json={
                    "name": name,
                    "unit_price": price,
                    "currency": "EUR",
                    "available": available,
                    "reorder_level": reorder_level,
                },
                headers=AS_ADMIN,
            )
            response.raise_for_status()
            print(f"   {sku}  {name:<22} {money(price, 'EUR'):>12}   {available} in stock")

        start = await end_offsets()
        placed = []
        print("\n== Orders (order service, POST /orders)")
        for label, items, token, cancel in SCENARIOS:
            response = await client.post(
                f"{ORDERS}/orders",
                json={
                    "payment_token": token,
                    "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
                },
                headers=AS_CUSTOMER | {"Idempotency-Key": str(uuid.uuid4())},
            )
            response.raise_for_status()
            order_id = response.json()["order_id"]
            placed.append((label, order_id, cancel))
            print(f"   {order_id}  {label} ({token})")

        results = {oid: await wait_settled(client, oid, cancel) for _, oid, cancel in placed}
    entries = await saga_entries(start, {oid for _, oid, _ in placed})

    for label, order_id, _ in placed:
        result = results[order_id]
        order, payment, reservation = result["order"], result["payment"], result["reservation"]
        print(f"\n== Saga of order {order_id}: {label} -> {order['status']}")
        for line in format_timeline([entry for entry in entries if entry.correlation_id == order_id]):
            print(f"   {line}")
        print(f"   {format_state(order, payment, reservation)}")

    print("\nTry it yourself (the customer is the token's subject):")
    print("   TOKEN=$(make -s token SUB=me ROLE=customer)")
    print(
        f"   curl -s -X POST {ORDERS}/orders -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\"
    )
    print('        -d \'{"items": [{"sku": "KB-101", "quantity": 1}], "payment_token": "tok_visa"}\'')
    print(f'   curl -s {ORDERS}/orders/<order_id>/events -H "Authorization: Bearer $TOKEN"')
    print("   .venv/bin/ecommerce saga trace <order_id>     (the operator CLI: see `.venv/bin/ecommerce --help`)")
    print(f"   (API docs, with an Authorize button for the token: {ORDERS}/docs, {PAYMENTS}/docs, {INVENTORY}/docs)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
