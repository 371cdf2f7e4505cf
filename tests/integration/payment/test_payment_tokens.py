"""The payment token stays sealed in the payment service until the charge: the executor opens it
right before the gateway call, the row forgets it once the charge is answered, and a token this
service cannot open is refused when its OrderCreated arrives (against the real Postgres, and for
the dead letter the real Kafka)."""

import asyncio
import importlib.util
import uuid
from pathlib import Path
from typing import Any

import payment_service
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import NewTopic
from nacl.public import PrivateKey
from payment_service.domain import ChargeResult, RefundResult
from payment_service.entrypoints import worker
from payment_service.entrypoints.executor import GatewayExecutor
from payment_service.service_layer.gateway_calls import REDACTED, UNREADABLE_TOKEN
from payment_service.service_layer.handlers import record_order, record_reservation
from sealed_tokens import opener
from shared.consumer.dead_letter import EXCEPTION_MESSAGE, read_dlt_headers
from shared.consumer.retry import NonRetryableError
from shared.events import Envelope
from shared.events.codec import encode
from shared.events.topics import dead_letter_topic
from shared.kafka.security import admin_client_config, as_admin
from shared.sealing import Opener, Sealer
from sqlalchemy import text
from structlog.testing import capture_logs

pytestmark = pytest.mark.infra


class TokenNotingGateway:
    """The test's recording gateway, noting the token each charge was asked with."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.tokens: list[str] = []

    async def charge(self, *, token: str, **request: Any) -> ChargeResult:
        self.tokens.append(token)
        return await self.inner.charge(token=token, **request)

    async def refund(self, **request: Any) -> RefundResult:
        return await self.inner.refund(**request)


class QuotingGateway:
    """A careless adapter whose error quotes its request, token included."""

    async def charge(self, *, token: str, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        raise RuntimeError(f"gateway refused request token={token} amount={amount}")

    async def refund(self, **request: Any) -> RefundResult:
        raise AssertionError("no refund is due")


@pytest.fixture
def gateway(gateway) -> TokenNotingGateway:
    return TokenNotingGateway(gateway)


def distinct(card: str = "tok_visa") -> str:
    """A token the test gateway treats as `card`, used by no other order (domain/gateway.py)."""
    return f"{card}_{uuid.uuid4().hex}"


def with_token(envelope: Envelope, payment_token: str) -> Envelope:
    return Envelope.new(envelope.event.model_copy(update={"payment_token": payment_token}))


async def test_the_executor_charges_with_the_opened_token_and_the_row_then_forgets_it(
    in_transaction, order_created, stock_reserved, settle, gateway, payment, order_id
):
    token = distinct()
    await in_transaction(record_order, order_created(order_id, token))
    await in_transaction(record_reservation, stock_reserved(order_id))

    before = await payment(order_id)
    assert before["status"] == "CHARGING"
    assert token not in before["payment_token"] and opener().open(before["payment_token"]) == token

    await settle()

    after = await payment(order_id)
    assert gateway.tokens == [token]
    assert (after["status"], after["payment_token"]) == ("CHARGED", None)


async def test_a_declined_charge_forgets_the_token_too(
    in_transaction, order_created, stock_reserved, settle, payment, order_id
):
    await in_transaction(record_order, order_created(order_id, distinct("tok_chargeDeclined")))
    await in_transaction(record_reservation, stock_reserved(order_id))
    await settle()
    row = await payment(order_id)
    assert (row["status"], row["failure_reason"], row["payment_token"]) == ("DECLINED", "card_declined", None)


@pytest.mark.parametrize(
    "unopenable",
    [
        pytest.param(Sealer(bytes(PrivateKey.generate().public_key)).seal("tok_visa"), id="sealed to another key"),
        pytest.param("tok_visa", id="in clear"),
        pytest.param("bm90IGEgc2VhbGVkIGJveA==", id="garbage"),
    ],
)
async def test_an_order_whose_token_cannot_be_opened_is_refused_when_it_arrives_and_nothing_is_kept(
    in_transaction, order_created, payment, order_id, unopenable
):
    with pytest.raises(NonRetryableError, match="payment token cannot be opened") as refused:
        await in_transaction(record_order, with_token(order_created(order_id), unopenable))
    assert unopenable not in str(refused.value)
    assert await payment(order_id) is None  # the transaction rolled back: no row, no token


async def test_a_charge_whose_token_this_key_cannot_open_is_declined_without_calling_the_gateway(
    settings, sessions, gateway, gateway_name, in_transaction, order_created, stock_reserved, payment, order_id
):
    await in_transaction(record_order, order_created(order_id))
    await in_transaction(record_reservation, stock_reserved(order_id))
    # The key was replaced (rotated without keeping the old one): the sealed token is unreadable now.
    rotated = GatewayExecutor(
        settings, sessions, gateway, gateway_name=gateway_name, opener=Opener(bytes(PrivateKey.generate()))
    )
    while await rotated.start_due_calls():
        await rotated.drain()

    row = await payment(order_id)
    assert gateway.tokens == []
    assert (row["status"], row["failure_reason"], row["payment_token"]) == ("DECLINED", UNREADABLE_TOKEN, None)


async def test_a_gateway_error_that_quotes_the_token_is_stored_and_logged_without_it(
    settings, sessions, gateway_name, in_transaction, order_created, stock_reserved, payment, order_id
):
    token = distinct()
    await in_transaction(record_order, order_created(order_id, token))
    await in_transaction(record_reservation, stock_reserved(order_id))
    executor = GatewayExecutor(settings, sessions, QuotingGateway(), gateway_name=gateway_name, opener=opener())
    with capture_logs() as logged:
        await executor.start_due_calls()
        await executor.drain()

    row = await payment(order_id)
    assert row["status"] == "CHARGING" and token not in row["last_error"] and REDACTED in row["last_error"]
    [error] = [line for line in logged if line["event"] == "gateway call raised an unexpected error"]
    assert "RuntimeError: gateway refused request" in error["exception"]  # the traceback, token left out
    assert token not in repr(logged)


async def test_the_worker_dead_letters_an_order_created_whose_token_cannot_be_opened_with_the_cause(
    settings, migrated, kafka_admin, bootstrap_servers, order_id, order_created, payment, monkeypatch
):
    topic = f"it-payment-tokens-{uuid.uuid4().hex[:12]}"
    await kafka_admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=3) for name in (topic, dead_letter_topic(topic))]
    )
    monkeypatch.setattr(worker, "TOPICS", (topic,))
    process_settings = settings.model_copy(update={"consumer_group": f"it-{topic}", **as_admin()})
    foreign = Sealer(bytes(PrivateKey.generate().public_key)).seal("tok_visa")
    record = encode(with_token(order_created(order_id), foreign))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(process_settings, stop))
    producer = AIOKafkaProducer(**admin_client_config(bootstrap_servers))
    consumer = AIOKafkaConsumer(
        dead_letter_topic(topic), **admin_client_config(bootstrap_servers), auto_offset_reset="earliest"
    )
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
        letter = await asyncio.wait_for(consumer.getone(), timeout=60)
    finally:
        await consumer.stop()
        await producer.stop()
        stop.set()
        await asyncio.wait_for(running, timeout=30)
        await kafka_admin.delete_topics([topic, dead_letter_topic(topic)])

    assert "payment token cannot be opened" in read_dlt_headers(letter.headers)[EXCEPTION_MESSAGE]
    assert letter.value == record.value  # the original bytes: the sealed box, nothing opened
    assert await payment(order_id) is None


async def test_the_migration_clears_the_tokens_an_earlier_release_kept_after_the_charge(sessions, gateway_name):
    migration = _load_migration("0004_forget_answered_tokens.py")
    charged, charging = uuid.uuid4(), uuid.uuid4()
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO payments (order_id, payment_token, amount, currency, status, payment_id, charged_at) "
                "VALUES (:order_id, 'tok_visa', 2500, 'EUR', 'CHARGED', gen_random_uuid(), now())"
            ),
            {"order_id": charged},
        )
        await session.execute(
            text(
                "INSERT INTO payments (order_id, payment_token, amount, currency, status, gateway, charge_key, "
                "next_attempt_at) VALUES (:order_id, 'sealed', 2500, 'EUR', 'CHARGING', :gateway, 'k', now())"
            ),
            {"order_id": charging, "gateway": gateway_name},
        )
    async with sessions() as session, session.begin():
        await session.execute(text(migration.FORGET_UNNEEDED_TOKENS))
        tokens = dict(
            (
                await session.execute(
                    text("SELECT order_id, payment_token FROM payments WHERE order_id IN (:a, :b)"),
                    {"a": charged, "b": charging},
                )
            ).all()
        )
    assert tokens == {charged: None, charging: "sealed"}  # a charge still in flight keeps what it needs


def _load_migration(name: str) -> Any:
    path = Path(payment_service.__file__).parents[2] / "migrations" / "versions" / name
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
