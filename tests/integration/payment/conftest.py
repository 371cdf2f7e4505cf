"""Fixtures for the payment handlers and API against the real Postgres (`make up-infra`).

Tests share the schema with a running payment service, so each one uses fresh order ids and looks
only at its own rows. The gateway is the built-in test gateway behind a recorder, so a test can count
how often money would have moved.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import pytest
from payment_service import views
from payment_service.domain import ChargeResult, RefundResult, TestCardGateway
from payment_service.entrypoints.api import create_app
from payment_service.settings import Settings
from shared.events import Envelope, Event, OrderCancelled, OrderCreated, OrderLine, PricedLine, StockReserved
from shared.events.base import utc_now
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@dataclass
class RecordingGateway:
    """The test card gateway, recording each call's idempotency key."""

    charges: list[str] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)
    refuse_refunds: bool = False
    inner: TestCardGateway = field(default_factory=TestCardGateway)

    async def charge(self, *, token: str, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        self.charges.append(idempotency_key)
        return await self.inner.charge(token=token, amount=amount, currency=currency, idempotency_key=idempotency_key)

    async def refund(self, *, payment_id: UUID, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        self.refunds.append(idempotency_key)
        if self.refuse_refunds:
            return RefundResult(refunded=False, failure_reason="charge_disputed")
        return await self.inner.refund(
            payment_id=payment_id, amount=amount, currency=currency, idempotency_key=idempotency_key
        )


@pytest.fixture
def gateway() -> RecordingGateway:
    return RecordingGateway()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(db_pool_size=25, db_max_overflow=5)


@pytest.fixture(scope="session")
def migrated(migrate) -> None:
    migrate("payment")


@pytest.fixture(scope="session")
def sessions(settings: Settings, service_sessions) -> async_sessionmaker[AsyncSession]:
    return service_sessions(settings)


@pytest.fixture
def in_transaction(sessions, gateway) -> Callable[..., Awaitable[Any]]:
    """`await in_transaction(handler, envelope)`: one committed unit of work, as the worker runs it."""

    async def run(handler: Callable[..., Awaitable[Any]], envelope: Envelope) -> Any:
        async with sessions() as session, session.begin():
            return await handler(session, envelope, gateway=gateway)

    return run


def incoming(event: Event) -> Envelope:
    """An event as another service's relay would deliver it (a fresh event id every time)."""
    return Envelope.new(event, source="integration-tests")


@pytest.fixture
def order_created() -> Callable[..., Envelope]:
    def build(order_id: UUID, token: str = "tok_visa") -> Envelope:
        return incoming(
            OrderCreated(
                order_id=order_id,
                customer_id="customer-it",
                items=(OrderLine(sku="MUG-BLUE", quantity=2),),
                payment_token=token,
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
    """`await payment(order_id)`: the payments row, or None."""

    async def read(order_id: UUID) -> dict[str, Any] | None:
        async with sessions() as session:
            return await views.payment(session, order_id)

    return read


@pytest.fixture
def order_id() -> UUID:
    return uuid.uuid4()


@pytest.fixture(scope="session")
async def api(settings: Settings, migrated: None, in_process_api) -> AsyncIterator[httpx.AsyncClient]:
    """The payment service's HTTP API in process, its lifespan run as uvicorn would run it."""
    async with in_process_api(create_app(settings)) as client:
        yield client
