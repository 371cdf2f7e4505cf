"""Fixtures for the inventory's handlers and API against the real Postgres (`make up-infra`).

Tests share the schema with a running inventory service, so each one uses fresh SKUs and order ids
and looks only at its own rows.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import httpx
import pytest
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from inventory_service.domain import CatalogEntry
from inventory_service.entrypoints.api import create_app
from inventory_service.service_layer import queries
from inventory_service.service_layer.commands import PutProduct
from inventory_service.service_layer.errors import UnknownReservation
from inventory_service.service_layer.handlers import build_handlers, put_product
from inventory_service.service_layer.queries import ReservationView
from inventory_service.settings import Settings
from shared.consumer.transaction import Applied, BatchFailed, apply_batch, decode_batch
from shared.events import Envelope, Event, OrderCreated, OrderLine
from shared.events.base import utc_now
from shared.events.codec import encode
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from statement_log import statement_kinds, statements_sent


@pytest.fixture(scope="session")
def settings() -> Settings:
    # Enough connections for the concurrency tests' 20 simultaneous transactions.
    return Settings(db_pool_size=25, db_max_overflow=5)


@pytest.fixture(scope="session")
def migrated(migrate) -> None:
    migrate("inventory")


@pytest.fixture(scope="session")
def sessions(settings: Settings, service_sessions) -> async_sessionmaker[AsyncSession]:
    return service_sessions(settings)


def as_records(envelopes: tuple[Envelope, ...] | list[Envelope]) -> list[ConsumerRecord]:
    """The envelopes as a worker receives them from one partition."""
    records = []
    for offset, envelope in enumerate(envelopes):
        kafka = encode(envelope)
        records.append(ConsumerRecord(kafka.topic, 0, offset, 0, 0, kafka.key, kafka.value, None, 0, 0, kafka.headers))
    return records


@pytest.fixture(name="as_records")
def as_records_fixture() -> Callable[[list[Envelope]], list[ConsumerRecord]]:
    return as_records


@pytest.fixture
def handle(sessions) -> Callable[..., Awaitable[list[Applied]]]:
    """`await handle(*envelopes)`: the events handled as the inventory's worker handles a batch of
    them: one committed transaction (claim the events, open the batch, each event's handler in
    order, flush, commit). One envelope is the worker's one-at-a-time path. A failure raises what
    the handler (or the flush) raised."""
    consumption = build_handlers()
    consumer = f"it-inventory-{uuid.uuid4().hex[:8]}"

    async def run(*envelopes: Envelope) -> list[Applied]:
        items = decode_batch(as_records(envelopes), consumption.handlers)
        assert items is not None
        try:
            return await apply_batch(sessions, consumer, items, consumption.open_batch)
        except BatchFailed as failed:
            raise failed.cause from failed

    return run


TRANSACTION = {"BEGIN", "COMMIT", "ROLLBACK"}


@pytest.fixture
def count_statements(sessions) -> Callable[[], AbstractContextManager[list[str]]]:
    """`with count_statements() as statements:` the SQL statements the tests' engine sent meanwhile,
    BEGIN and COMMIT left out (statement_log.statements_sent)."""

    @contextmanager
    def counting() -> Iterator[list[str]]:
        statements: list[str] = []
        with statements_sent(sessions) as sent:
            yield statements
        statements.extend(s for s, kind in zip(sent, statement_kinds(sent), strict=True) if kind not in TRANSACTION)

    return counting


@pytest.fixture
def new_sku() -> Callable[[str], str]:
    return lambda name="IT": f"{name}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def add_product(sessions) -> Callable[..., Awaitable[None]]:
    """`await add_product(sku, available=n, ...)`: the entry put as the API puts it (its own transaction)."""

    async def add(
        sku: str, *, available: int, unit_price: int = 1000, currency: str = "EUR", reorder_level: int = 0
    ) -> None:
        entry = CatalogEntry(f"Product {sku}", unit_price, currency, available, reorder_level)
        async with sessions() as session:
            await put_product(session, PutProduct(sku, entry))

    return add


@pytest.fixture
def order_created() -> Callable[..., Envelope]:
    """`order_created({sku: units, ...}, order_id=None)`: an OrderCreated as the order service sends it."""

    def build(quantities: dict[str, int], order_id: uuid.UUID | None = None) -> Envelope:
        event = OrderCreated(
            order_id=order_id or uuid.uuid4(),
            customer_id="customer-it",
            items=tuple(OrderLine(sku=sku, quantity=quantity) for sku, quantity in quantities.items()),
            payment_token="tok_visa",
            created_at=utc_now(),
        )
        return incoming(event)

    return build


def incoming(event: Event) -> Envelope:
    """An event as another service's relay would deliver it (a fresh event id every time)."""
    return Envelope.new(event)


@pytest.fixture(name="incoming")
def incoming_fixture() -> Callable[[Event], Envelope]:
    return incoming


@pytest.fixture
def stock(sessions) -> Callable[[str], Awaitable[tuple[int, int, int]]]:
    """`await stock(sku)`: the product's (available, reserved, sold)."""

    async def read(sku: str) -> tuple[int, int, int]:
        async with sessions() as session:
            product = await queries.get_product(session, sku)
        return product.available, product.reserved, product.sold

    return read


@pytest.fixture
def reservation(sessions) -> Callable[[uuid.UUID], Awaitable[ReservationView | None]]:
    """`await reservation(order_id)`: the reservation as the API reads it, or None."""

    async def read(order_id: uuid.UUID) -> ReservationView | None:
        async with sessions() as session:
            try:
                return await queries.get_reservation(session, order_id)
            except UnknownReservation:
                return None

    return read


@pytest.fixture(scope="session")
async def inventory_app(settings: Settings, migrated: None) -> AsyncIterator[FastAPI]:
    """The inventory's HTTP API in process, its lifespan run as uvicorn would run it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def api(inventory_app: FastAPI, caller_of) -> AsyncIterator[httpx.AsyncClient]:
    """The inventory's API called by an admin (who may write the catalog)."""
    async with caller_of(inventory_app, "admin-it", "admin") as client:
        yield client
