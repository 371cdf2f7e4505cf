"""Fixtures for the order service's adapters, handlers and API against the real Postgres
(`make up-infra`). The schema is shared with a possibly running order service, so every test uses
fresh order ids, customers and keys and looks only at its own rows."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from order_service.entrypoints.api import create_app
from order_service.service_layer import handlers
from order_service.service_layer.commands import Line, PlaceOrder
from order_service.settings import Settings
from shared.events import Envelope
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@pytest.fixture(scope="session")
def order_settings() -> Settings:
    return Settings(db_pool_size=20, db_max_overflow=5)


@pytest.fixture(scope="session")
def migrated(migrate) -> None:
    migrate("order")


@pytest.fixture(scope="session")
def sessions(order_settings: Settings, service_sessions) -> async_sessionmaker[AsyncSession]:
    return service_sessions(order_settings)


@pytest.fixture
def customer() -> str:
    return f"it-customer-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def place(sessions, customer) -> Callable[..., Awaitable[uuid.UUID]]:
    """`await place(("SKU-1", 2), ..., key=None)`: a new order of the test's customer; its id."""

    async def run(*lines: tuple[str, int], key: str | None = None, token: str = "tok_visa") -> uuid.UUID:
        command = PlaceOrder(
            customer, tuple(Line(sku, quantity) for sku, quantity in lines or [("SKU-1", 1)]), token, key
        )
        async with sessions() as session:
            placed = await handlers.place_order(session, command)
        return placed.order.order_id

    return run


async def handle_in_one_transaction(sessions: async_sessionmaker[AsyncSession], *envelopes: Envelope) -> None:
    """What the worker does with a batch of claimed events: open the unit of work on all of them,
    run each one's handler in order, flush, commit."""
    consumption = handlers.build_handlers()
    async with sessions() as session, session.begin():
        batch = await consumption.open_batch(session, envelopes)
        for envelope in envelopes:
            await consumption.handlers[envelope.event_type](batch, envelope)
        await batch.flush()


@pytest.fixture
def handle(sessions) -> Callable[..., Awaitable[None]]:
    """`await handle(envelope, ...)`: the events handled in one worker transaction, committed."""

    async def run(*envelopes: Envelope) -> None:
        await handle_in_one_transaction(sessions, *envelopes)

    return run


@pytest.fixture(scope="session")
async def api(order_settings: Settings, migrated: None, in_process_api) -> AsyncIterator[httpx.AsyncClient]:
    """The order HTTP API in process, its lifespan run as uvicorn would run it."""
    async with in_process_api(create_app(order_settings)) as client:
        yield client
