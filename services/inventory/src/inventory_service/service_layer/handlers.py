"""The inventory's use cases. Each runs inside a transaction its caller opened, and none commits or
touches Kafka. An API command locks the product it changes, applies the domain, saves it and adds
its events to the outbox. An event handler works on the worker's batch (unit_of_work.py), which
`open_batch` loaded and locked for all of the transaction's events: it applies the domain to that
state in memory, notes what it changed and emits its events; the batch writes them at flush.

Locks are always taken in the same order (reservation rows by order id, then products by SKU), so
concurrent transactions on the same SKUs queue up instead of deadlocking.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from shared.consumer.retry import NonRetryableError
from shared.db import driver_connection
from shared.events import Envelope, Event, LowStockAlert, OrderCancelled, OrderCreated, PaymentProcessed
from shared.logging import get_logger
from shared.outbox.writer import add_to_outbox
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters import repository
from inventory_service.domain import InventoryError, Product, Reservation, on_order_cancelled, on_order_created, sell

from .commands import PutProduct, Restock
from .unit_of_work import InventoryBatch

MAX_STOCK = 1_000_000_000  # per counter: far beyond any real warehouse, well inside a Postgres integer

log = get_logger(__name__)

E = TypeVar("E", bound=Event)
T = TypeVar("T")


class UnknownProduct(Exception):
    """No catalog entry has this SKU."""


class StockLimitExceeded(Exception):
    """A restock would lift the available stock beyond MAX_STOCK."""


# -- commands from the HTTP API ---------------------------------------------------------------------


async def put_product(session: AsyncSession, command: PutProduct) -> bool:
    """Create or replace the entry; True when it was created. Raises InvalidProduct for nonsense."""
    entry = {
        "name": command.name,
        "unit_price": command.unit_price,
        "currency": command.currency,
        "available": command.available,
        "reorder_level": command.reorder_level,
    }
    connection = await driver_connection(session)
    product = await repository.lock_product(connection, command.sku)
    if product is None:
        new = Product(sku=command.sku, **entry)
        if await repository.add_product(connection, new):
            await add_to_outbox(session, *_envelopes(_low_stock_alerts([(new, False)])))
            return True
        # A concurrent PUT created the SKU between our look and our insert: replace its entry.
        product = await repository.lock_product(connection, command.sku)
        assert product is not None
    was_low = product.is_low
    product.replace_catalog_entry(**entry)
    await repository.save_products(connection, [product])
    await add_to_outbox(session, *_envelopes(_low_stock_alerts([(product, was_low)])))
    return False


async def restock(session: AsyncSession, command: Restock) -> None:
    connection = await driver_connection(session)
    product = await repository.lock_product(connection, command.sku)
    if product is None:
        raise UnknownProduct(command.sku)
    if product.available + command.quantity > MAX_STOCK:
        raise StockLimitExceeded(
            f"{command.sku}: {product.available} available plus {command.quantity} exceeds {MAX_STOCK}"
        )
    product.restock(command.quantity)
    await repository.save_products(connection, [product])


# -- events from other services ---------------------------------------------------------------------


async def open_batch(session: AsyncSession, envelopes: Sequence[Envelope]) -> InventoryBatch:
    """The worker's unit of work for these events: every reservation and product their handlers
    will touch, loaded and locked in two statements, in the common order (reservations by order id,
    then products by SKU), so two batches never wait on each other in a cycle. The products are
    those the orders ask for and those the existing reservations hold (which a cancellation or a
    payment moves); a reservation a batch creates holds only SKUs its OrderCreated asked for."""
    order_ids = {
        e.event.order_id for e in envelopes if isinstance(e.event, OrderCreated | OrderCancelled | PaymentProcessed)
    }
    connection = await driver_connection(session)
    held = await repository.lock_reservations(connection, order_ids)
    skus = {line.sku for reservation in held for line in reservation.lines}
    skus.update(line.sku for e in envelopes if isinstance(e.event, OrderCreated) for line in e.event.items)
    products = await repository.lock_products(connection, skus)
    return InventoryBatch(session, connection, held, products, order_ids=order_ids, skus=skus)


async def reserve_stock(batch: InventoryBatch, envelope: Envelope) -> None:
    """OrderCreated: hold every line or none, then tell the saga (and warn about low stock)."""
    order = _payload(envelope, OrderCreated)
    if not order.items:
        raise NonRetryableError(f"order {order.order_id} has no lines to reserve")
    existing = batch.reservation(order.order_id)
    products = batch.products(line.sku for line in order.items) if existing is None else {}
    outcome = on_order_created(existing, order.order_id, order.items, products)
    if outcome is None:
        # The dedup table catches a redelivered event; this catches the same order told twice, and
        # an OrderCreated redriven from a dead-letter topic after the order was cancelled.
        log.warning("order already has a reservation; nothing to reserve", status=_status(existing))
        return
    batch.save(outcome.reservation, products.values() if outcome.succeeded else ())
    batch.emit(*_envelopes(outcome.events, caused_by=envelope))
    log.debug("reservation answered", status=outcome.reservation.status.value)


async def release_stock(batch: InventoryBatch, envelope: Envelope) -> None:
    """OrderCancelled: what the order holds, reserved or sold, becomes available again. An order
    with no reservation yet gets a tombstone, so that its OrderCreated, if it comes after all,
    reserves nothing."""
    cancelled = _payload(envelope, OrderCancelled)
    existing = batch.reservation(cancelled.order_id)
    products = batch.products(() if existing is None else (line.sku for line in existing.lines))
    outcome = _apply(on_order_cancelled, existing, cancelled.order_id, products)
    if outcome is None:
        return  # released before, or failed: nothing was held
    batch.save(outcome.reservation, products.values())
    batch.emit(*_envelopes(outcome.events, caused_by=envelope))
    if outcome.events:
        log.debug("stock released")
    else:
        # Its OrderCreated never got here (dead-lettered) or is late; the tombstone awaits it.
        log.warning("cancelled order had no reservation; tombstone left")


async def sell_stock(batch: InventoryBatch, envelope: Envelope) -> None:
    """PaymentProcessed: the held units are sold. After a cancellation nothing is held and nothing
    is sold; the payment service refunds that charge."""
    paid = _payload(envelope, PaymentProcessed)
    reservation = batch.reservation(paid.order_id)
    if reservation is None:
        log.warning("paid order has no reservation; nothing to sell")
        return
    products = batch.products(line.sku for line in reservation.lines)
    if not _apply(sell, reservation, products):
        log.info("payment arrived after the reservation ended; nothing to sell", status=reservation.status.value)
        return
    batch.save(reservation, products.values())
    log.debug("stock sold")


# -- helpers ----------------------------------------------------------------------------------------


def _payload(envelope: Envelope, expected: type[E]) -> E:
    if not isinstance(envelope.event, expected):
        raise NonRetryableError(f"expected {expected.event_type}, got {envelope.event_type}")
    return envelope.event


def _status(reservation: Reservation | None) -> str | None:
    return None if reservation is None else reservation.status.value


def _apply(move: Callable[..., T], *args: Any) -> T:
    """A stock move the domain refuses means stock that does not add up: retrying cannot fix it,
    so the message goes straight to the dead-letter topic for a human."""
    try:
        return move(*args)
    except InventoryError as exc:
        raise NonRetryableError(str(exc)) from exc


def _low_stock_alerts(changes: Iterable[tuple[Product, bool]]) -> list[Event]:
    """An alert for each product that just fell below its reorder level (not one that stays low)."""
    return [
        LowStockAlert(sku=product.sku, available=product.available, reorder_level=product.reorder_level)
        for product, was_low in changes
        if product.is_low and not was_low
    ]


def _envelopes(events: Iterable[Event], caused_by: Envelope | None = None) -> list[Envelope]:
    return [Envelope.new(event, caused_by=caused_by) for event in events]
