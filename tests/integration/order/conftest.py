"""Fixtures for the order service's adapters, handlers and API against the real Postgres
(`make up-infra`). The schema is shared with a possibly running order service, so every test uses
fresh order ids, customers and keys and looks only at its own rows."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from order_service.entrypoints.api import create_app
from order_service.service_layer import handlers
from order_service.service_layer.commands import Line, PlaceOrder
from order_service.settings import Settings
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


@pytest.fixture
def in_transaction(sessions) -> Callable[..., Awaitable[Any]]:
    """`await in_transaction(handler, *args)`: one unit of work, committed, as the worker runs it."""

    async def run(handler: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        async with sessions() as session, session.begin():
            return await handler(session, *args)

    return run


@pytest.fixture(scope="session")
async def api(order_settings: Settings, migrated: None, in_process_api) -> AsyncIterator[httpx.AsyncClient]:
    """The order HTTP API in process, its lifespan run as uvicorn would run it."""
    async with in_process_api(create_app(order_settings)) as client:
        yield client
