"""Fixtures for the order service's adapters, handlers and API against the real Postgres
(`make up-infra`). The schema is shared with a possibly running order service, so every test uses
fresh order ids, customers and keys and looks only at its own rows."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from order_service.adapters import event_store, projection
from order_service.adapters.repository import envelope_for
from order_service.domain import Order, OrderItem
from order_service.entrypoints.api import create_app
from order_service.service_layer import handlers
from order_service.service_layer.commands import Line, PlaceOrder
from order_service.settings import Settings
from sealed_tokens import sealer
from shared.db import driver_connection
from shared.events import Envelope
from shared.events.base import utc_now
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from statement_log import statement_kinds, statements_sent


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
    """`await place(("SKU-1", 2), ..., key=None)`: a new order of the test's customer, placed as the
    API places it (event, projection and outbox row); its id. Its outbox row is marked published in
    the same transaction, so the running saga (the stack is shared) never hears of it and only the
    test's own events move the order: otherwise inventory's answer races the test's."""

    async def run(*lines: tuple[str, int], key: str | None = None, token: str = "tok_visa") -> uuid.UUID:
        command = PlaceOrder(
            customer, tuple(Line(sku, quantity) for sku, quantity in lines or [("SKU-1", 1)]), token, key
        )
        async with sessions() as session:
            event.listen(session.sync_session, "before_commit", _unpublishable)
            placed = await handlers.place_order(session, command, sealer())
        return placed.order.order_id

    return run


def _unpublishable(session: Any) -> None:
    session.execute(
        text("UPDATE outbox SET published_at = now() WHERE published_at IS NULL AND xmin = pg_current_xact_id()::xid")
    )


@pytest.fixture
def place_unheard(sessions, customer) -> Callable[..., Awaitable[uuid.UUID]]:
    """`await place_unheard(at=now)`: an order placed at that time whose OrderCreated reached no one:
    stored and projected, but not in the outbox. The running saga (the stack is shared) never
    answers it, so only the test's own events move it."""

    async def place(at: datetime | None = None) -> uuid.UUID:
        order = Order.place(uuid.uuid4(), customer, [OrderItem("SKU-1", 2)], "tok_visa", at or utc_now())
        (recorded,) = order.pending_events
        async with sessions() as session, session.begin():
            connection = await driver_connection(session)
            await event_store.append(connection, [event_store.stored_event(recorded, envelope_for(recorded, None))])
            await projection.insert_many(session, [projection.project(order)])
        return order.order_id

    return place


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


@pytest.fixture
def round_trips(sessions) -> Callable[[], AbstractContextManager[list[str]]]:
    """`with round_trips() as sent:` the first word of every statement the sessions' connections send
    to Postgres in the block, BEGIN and COMMIT included (statement_log.statements_sent)."""

    @contextmanager
    def record() -> Iterator[list[str]]:
        kinds: list[str] = []
        with statements_sent(sessions) as sent:
            yield kinds
        kinds.extend(statement_kinds(sent))

    return record


@pytest.fixture(scope="session")
async def order_app(order_settings: Settings, migrated: None) -> AsyncIterator[FastAPI]:
    """The order HTTP API in process, its lifespan run as uvicorn would run it."""
    app = create_app(order_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(order_app: FastAPI, customer: str, caller_of) -> AsyncIterator[httpx.AsyncClient]:
    """The order API called by the test's customer, with its own token."""
    async with caller_of(order_app, customer, "customer") as client:
        yield client
