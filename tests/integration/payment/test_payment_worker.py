"""The payment worker process, as `payment-worker` runs it: the event worker and the gateway executor
on one pool, against the real Kafka and Postgres. Its topics are replaced by a fresh one, so it
reads only this test's records, in a consumer group of its own."""

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from payment_service.entrypoints import worker
from shared.events.codec import encode
from shared.kafka.security import admin_client_config, as_admin

pytestmark = pytest.mark.infra


async def test_the_worker_process_charges_an_order_from_its_events_through_its_executor_at_once(
    settings,
    migrated,
    kafka_admin,
    bootstrap_servers,
    order_id,
    order_created,
    stock_reserved,
    payment,
    eventually,
    monkeypatch,
):
    topic = f"it-payment-worker-{uuid.uuid4().hex[:12]}"
    await kafka_admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)])
    monkeypatch.setattr(worker, "TOPICS", (topic,))
    # A sweep too slow to matter: the charge must come from the handler's commit waking the executor.
    process_settings = settings.model_copy(
        update={"consumer_group": f"it-{topic}", "executor_sweep_interval_s": 60.0, **as_admin()}
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(process_settings, stop))
    producer = AIOKafkaProducer(**admin_client_config(bootstrap_servers))
    await producer.start()
    try:
        for envelope in (order_created(order_id), stock_reserved(order_id)):
            record = encode(envelope)
            await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)

        async def charged() -> bool:
            row = await payment(order_id)
            return row is not None and row["status"] == "CHARGED"

        await eventually(charged, timeout=30, interval=0.1, what="the order charged by the worker process")
    finally:
        await producer.stop()
        stop.set()
        await asyncio.wait_for(running, timeout=30)
        await kafka_admin.delete_topics([topic])
    assert (await payment(order_id))["gateway"] == "test"
