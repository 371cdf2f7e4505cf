"""Fixtures for the payment handlers, executor and API against the real Postgres (`make up-infra`).

Tests share the schema with a running payment service, so each one uses fresh order ids and looks
only at its own rows, and records its intents for a gateway name of its own: only the test's
executor works on them (a running worker's executor serves the gateway "test" only), and the
test's executor never touches anyone else's. The gateway is the built-in test gateway behind a
recorder with the real thing's idempotency, so a test can count how often money moved.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI
from payment_service.adapters.fault_switch import FaultSwitch
from payment_service.adapters.tables import payments
from payment_service.domain import ChargeResult, RefundResult, TestCardGateway
from payment_service.entrypoints.api import create_app
from payment_service.entrypoints.executor import GatewayExecutor
from payment_service.service_layer.unit_of_work import open_batch
from payment_service.settings import Settings
from sealed_tokens import opener, opener_for, sealed
from shared.events import Envelope, Event, OrderCancelled, OrderCreated, OrderLine, PricedLine, StockReserved
from shared.events.base import utc_now
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from statement_log import statement_kinds, statements_sent


@dataclass
class RecordingGateway:
    """The test card gateway with a ledger. Like a real gateway, it answers a key it has seen with
    the first answer and moves no money again: `charges` and `refunds` hold what moved (one entry
    per key), `calls` every request made."""

    charges: dict[str, ChargeResult] = field(default_factory=dict)
    refunds: dict[str, RefundResult] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    refuse_refunds: bool = False
    # Set to make the next charge freeze right after the money moved, before the answer is back:
    # `charged` is set then, and the test kills the caller (a process dying at that instant).
    freeze_after_charge: bool = False
    charged: asyncio.Event = field(default_factory=asyncio.Event)
    inner: TestCardGateway = field(default_factory=TestCardGateway)

    async def charge(self, *, token: str, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        self.calls.append(idempotency_key)
        if idempotency_key not in self.charges:
            self.charges[idempotency_key] = await self.inner.charge(
                token=token, amount=amount, currency=currency, idempotency_key=idempotency_key
            )
        if self.freeze_after_charge:
            self.freeze_after_charge = False
            self.charged.set()
            await asyncio.Future()  # until cancelled
        return self.charges[idempotency_key]

    async def refund(self, *, payment_id: UUID, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        self.calls.append(idempotency_key)
        if idempotency_key not in self.refunds:
            if self.refuse_refunds:
                return RefundResult(refunded=False, failure_reason="charge_disputed")
            self.refunds[idempotency_key] = await self.inner.refund(
                payment_id=payment_id, amount=amount, currency=currency, idempotency_key=idempotency_key
            )
        return self.refunds[idempotency_key]

    def approved_charges(self) -> list[str]:
        return [key for key, result in self.charges.items() if result.approved]


@pytest.fixture
def gateway() -> RecordingGateway:
    return RecordingGateway()


@pytest.fixture
def fault_file(tmp_path: Path) -> Path:
    """Write `hang` or `error` here to make the test's gateway hang or fail (PAYMENT_GATEWAY_FAULT_FILE)."""
    return tmp_path / "gateway-fault"


@pytest.fixture
def gateway_name() -> str:
    return f"integration-tests-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def settings() -> Settings:
    # Short timeouts, leases and backoffs, so faults and recoveries play out in a second or two.
    return Settings(
        db_pool_size=25,
        db_max_overflow=5,
        gateway_timeout_s=0.5,
        gateway_retry_backoff_s=0.1,
        gateway_retry_backoff_max_s=0.4,
        executor_lease_s=1.0,
        executor_sweep_interval_s=0.05,
    )


@pytest.fixture(scope="session")
def migrated(migrate) -> None:
    migrate("payment")


@pytest.fixture(scope="session")
def sessions(settings: Settings, service_sessions) -> async_sessionmaker[AsyncSession]:
    return service_sessions(settings)


@pytest.fixture
def executor(settings, sessions, gateway, fault_file, gateway_name) -> GatewayExecutor:
    """The test's executor, not running: drive it with `settle()`, or start it with `running_executor`."""
    return GatewayExecutor(
        settings, sessions, FaultSwitch(gateway, fault_file), gateway_name=gateway_name, opener=opener()
    )


@pytest.fixture
async def running_executor(executor) -> AsyncIterator[GatewayExecutor]:
    """The executor running in the background, as in the worker process, until the test ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(executor.run(stop))
    yield executor
    stop.set()
    await asyncio.wait_for(task, timeout=10)


@pytest.fixture
def settle(executor) -> Callable[[], Awaitable[None]]:
    """`await settle()`: the executor makes every call that is due, to the end (a charge cancelled
    meanwhile: its refund too). For tests whose executor is not running."""

    async def run() -> None:
        while await executor.start_due_calls():
            await executor.drain()

    return run


@pytest.fixture
def in_batch(sessions, gateway_name, executor) -> Callable[..., Awaitable[None]]:
    """`await in_batch([(handler, envelope), ...])`: one committed worker transaction handling the
    events in order, as the worker runs a batch (open, handle each, flush, commit, committed)."""

    async def run(handled: Sequence[tuple[Callable[..., Awaitable[Any]], Envelope]]) -> None:
        async with sessions() as session:
            async with session.begin():
                batch = await open_batch(session, [envelope for _, envelope in handled])
                for handler, envelope in handled:
                    options = opener_for(handler)
                    await handler(batch, envelope, gateway=gateway_name, on_intent=executor.wake, **options)
                await batch.flush()
            batch.committed()

    return run


TRANSACTION = {"BEGIN", "COMMIT", "ROLLBACK"}


@pytest.fixture
def count_statements(sessions) -> Callable[..., AbstractContextManager[list[str]]]:
    """`with count_statements() as statements:` the SQL statements the test's engine sent meanwhile,
    BEGIN and COMMIT left out (tests/integration/conftest.py: statements_sent).
    `count_statements(on_each)` also calls `on_each(statement)` as each one has run."""

    @contextmanager
    def counting(on_each: Callable[[str], None] = lambda _statement: None) -> Iterator[list[str]]:
        statements: list[str] = []
        with statements_sent(sessions, on_each) as sent:
            yield statements
        statements.extend(s for s, kind in zip(sent, statement_kinds(sent), strict=True) if kind not in TRANSACTION)

    return counting


@pytest.fixture
def in_transaction(in_batch) -> Callable[..., Awaitable[None]]:
    """`await in_transaction(handler, envelope)`: a batch of one event (the worker's fallback)."""

    async def run(handler: Callable[..., Awaitable[Any]], envelope: Envelope) -> None:
        await in_batch([(handler, envelope)])

    return run


def incoming(event: Event) -> Envelope:
    """An event as another service's relay would deliver it (a fresh event id every time)."""
    return Envelope.new(event)


@pytest.fixture
def order_created() -> Callable[..., Envelope]:
    seals: dict[tuple[UUID, str], str] = {}

    def build(order_id: UUID, token: str = "tok_visa", customer_id: str = "customer-it") -> Envelope:
        """`token` sealed as the order service seals it: once per order, as its one OrderCreated
        carries one sealed box however often it is delivered (each sealing gives another box)."""
        return incoming(
            OrderCreated(
                order_id=order_id,
                customer_id=customer_id,
                items=(OrderLine(sku="MUG-BLUE", quantity=2),),
                payment_token=seals.setdefault((order_id, token), sealed(token)),
                created_at=utc_now(),
            )
        )

    return build


@pytest.fixture
def stock_reserved() -> Callable[..., Envelope]:
    def build(order_id: UUID, amount: int = 2500, currency: str = "EUR") -> Envelope:
        line = PricedLine(sku="MUG-BLUE", quantity=2, unit_price=amount // 2)
        return incoming(StockReserved(order_id=order_id, items=(line,), total_amount=amount, currency=currency))

    return build


@pytest.fixture
def order_cancelled() -> Callable[..., Envelope]:
    return lambda order_id: incoming(OrderCancelled(order_id=order_id, reason="customer_request"))


@pytest.fixture
def payment(sessions) -> Callable[[UUID], Awaitable[dict[str, Any] | None]]:
    """`await payment(order_id)`: the payments row as stored, intent bookkeeping included (what the
    API does not show: gateway, keys, attempts, last error), or None."""

    async def read(order_id: UUID) -> dict[str, Any] | None:
        async with sessions() as session:
            row = (await session.execute(select(payments).where(payments.c.order_id == order_id))).first()
        return None if row is None else dict(row._mapping)

    return read


@pytest.fixture
def order_id() -> UUID:
    return uuid.uuid4()


@pytest.fixture(scope="session")
async def payment_app(settings: Settings, migrated: None) -> AsyncIterator[FastAPI]:
    """The payment service's HTTP API in process, its lifespan run as uvicorn would run it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def api(payment_app: FastAPI, caller_of) -> AsyncIterator[httpx.AsyncClient]:
    """The payment service's API called by support (who may read any payment)."""
    async with caller_of(payment_app, "support-it", "support") as client:
        yield client
