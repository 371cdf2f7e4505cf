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
from datetime import datetime

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from dev_token import mint_token
from shared.events.codec import decode
from shared.events.topics import EVENT_TOPICS, PARTITIONS
from shared.kafka.security import admin_client_config

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


def money(amount: int | None, currency: str | None) -> str:
    return "-" if amount is None else f"{amount / 100:.2f} {currency}"


async def end_offsets() -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**admin_client_config(BOOTSTRAP), enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.end_offsets(
            [TopicPartition(topic, partition) for topic in EVENT_TOPICS for partition in range(PARTITIONS)]
        )
    finally:
        await consumer.stop()


async def events_since(start: dict[TopicPartition, int], order_ids: set[str]) -> list:
    """Every saga event about these orders published since `start`, from all three topics."""
    consumer = AIOKafkaConsumer(**admin_client_config(BOOTSTRAP), enable_auto_commit=False)
    await consumer.start()
    found = []
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        end = await consumer.end_offsets(list(start))
        remaining = {tp for tp in start if end[tp] > start[tp]}
        while remaining:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for record in records:
                    envelope = decode(record.value, record.headers)
                    if envelope.correlation_id in order_ids:
                        found.append(envelope)
                    if record.offset + 1 >= end[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return sorted(found, key=lambda envelope: envelope.occurred_at)


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


def describe(envelope) -> str:
    event = envelope.event
    data = event.model_dump()
    if "total_amount" in data:
        return f"total {money(data['total_amount'], data['currency'])}"
    if "amount" in data:
        extra = f", {data['reason']}" if "reason" in data else ""
        return f"{money(data['amount'], data['currency'])}{extra}"
    if "failures" in data:
        return "; ".join(
            f"{f['sku']}: {f['reason']} (wanted {f['requested']}, {f['available']} left)" for f in data["failures"]
        )
    if "reason" in data:
        return data["reason"]
    if "items" in data:
        return ", ".join(f"{line['quantity']}x {line['sku']}" for line in data["items"])
    if "reorder_level" in data:
        return f"{data['sku']}: {data['available']} left, reorder level {data['reorder_level']}"
    return ""


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
    events = await events_since(start, {oid for _, oid, _ in placed})

    for label, order_id, _ in placed:
        result = results[order_id]
        order, payment, reservation = result["order"], result["payment"], result["reservation"]
        print(f"\n== Saga of order {order_id}: {label} -> {order['status']}")
        mine = [envelope for envelope in events if envelope.correlation_id == order_id]
        t0: datetime | None = mine[0].occurred_at if mine else None
        for envelope in mine:
            offset_ms = (envelope.occurred_at - t0).total_seconds() * 1000 if t0 else 0
            print(f"   +{offset_ms:7.0f} ms  {envelope.source:<10} {envelope.event_type:<24} {describe(envelope)}")
        print(
            f"   order: {order['status']} total {money(order['total_amount'], order['currency'])}"
            f"{', ' + order['cancellation_reason'] if order['cancellation_reason'] else ''}"
            f"   payment: {payment.get('status', '-')}   stock: {reservation.get('status', '-')}"
        )

    print("\nTry it yourself (the customer is the token's subject):")
    print("   TOKEN=$(make -s token SUB=me ROLE=customer)")
    print(
        f"   curl -s -X POST {ORDERS}/orders -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\"
    )
    print('        -d \'{"items": [{"sku": "KB-101", "quantity": 1}], "payment_token": "tok_visa"}\'')
    print(f'   curl -s {ORDERS}/orders/<order_id>/events -H "Authorization: Bearer $TOKEN"')
    print(f"   (API docs, with an Authorize button for the token: {ORDERS}/docs, {PAYMENTS}/docs, {INVENTORY}/docs)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
