"""The inventory's use cases. Each runs inside a transaction its caller opened (an API route, or the
worker's per-message transaction after the dedup row): it locks what it changes, applies the domain,
saves, and adds the resulting events to the outbox. None commits and none touches Kafka.

Locks are always taken in the same order (the order's reservation row, then products by SKU), so
concurrent orders for the same SKUs queue up instead of deadlocking.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from shared.consumer.retry import NonRetryableError
from shared.events import Envelope, Event, LowStockAlert, OrderCancelled, OrderCreated, PaymentProcessed
from shared.logging import get_logger
from shared.outbox.writer import add_to_outbox
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters import repository
from inventory_service.domain import InventoryError, Product, Reservation, on_order_cancelled, on_order_created, sell

from .commands import PutProduct, Restock

SOURCE = "inventory"
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
    product = await repository.lock_product(session, command.sku)
    if product is None:
        new = Product(sku=command.sku, **entry)
        if await repository.add_product(session, new):
            await _emit(session, _low_stock_alerts([(new, False)]))
            return True
        # A concurrent PUT created the SKU between our look and our insert: replace its entry.
        product = await repository.lock_product(session, command.sku)
        assert product is not None
    was_low = product.is_low
    product.replace_catalog_entry(**entry)
    await repository.save_products(session, [product])
    await _emit(session, _low_stock_alerts([(product, was_low)]))
    return False


async def restock(session: AsyncSession, command: Restock) -> None:
    product = await repository.lock_product(session, command.sku)
    if product is None:
        raise UnknownProduct(command.sku)
    if product.available + command.quantity > MAX_STOCK:
        raise StockLimitExceeded(
            f"{command.sku}: {product.available} available plus {command.quantity} exceeds {MAX_STOCK}"
        )
    product.restock(command.quantity)
    await repository.save_products(session, [product])


# -- events from other services ---------------------------------------------------------------------


async def reserve_stock(session: AsyncSession, envelope: Envelope) -> None:
    """OrderCreated: hold every line or none, then tell the saga (and warn about low stock)."""
    order = _payload(envelope, OrderCreated)
    if not order.items:
        raise NonRetryableError(f"order {order.order_id} has no lines to reserve")
    existing = await _reservation_or_claim(session, order.order_id)
    products = await repository.lock_products(session, (line.sku for line in order.items)) if existing is None else {}
    outcome = on_order_created(existing, order.order_id, order.items, products)
    if outcome is None:
        # The dedup table catches a redelivered event; this catches the same order told twice, and
        # an OrderCreated redriven from a dead-letter topic after the order was cancelled.
        log.warning("order already has a reservation; nothing to reserve", status=_status(existing))
        return
    await repository.save_products(session, products.values() if outcome.succeeded else ())
    await repository.save_reservation(session, outcome.reservation)
    await _emit(session, outcome.events, caused_by=envelope)
    log.debug("reservation answered", status=outcome.reservation.status.value)


async def release_stock(session: AsyncSession, envelope: Envelope) -> None:
    """OrderCancelled: what the order holds, reserved or sold, becomes available again. An order
    with no reservation yet gets a tombstone, so that its OrderCreated, if it comes after all,
    reserves nothing."""
    cancelled = _payload(envelope, OrderCancelled)
    existing = await _reservation_or_claim(session, cancelled.order_id)
    held_skus = () if existing is None else [line.sku for line in existing.lines]
    products = await repository.lock_products(session, held_skus)
    outcome = _apply(on_order_cancelled, existing, cancelled.order_id, products)
    if outcome is None:
        return  # released before, or failed: nothing was held
    await repository.save_products(session, products.values())
    await repository.save_reservation(session, outcome.reservation)
    await _emit(session, outcome.events, caused_by=envelope)
    if outcome.events:
        log.debug("stock released")
    else:
        # Its OrderCreated never got here (dead-lettered) or is late; the tombstone awaits it.
        log.warning("cancelled order had no reservation; tombstone left")


async def sell_stock(session: AsyncSession, envelope: Envelope) -> None:
    """PaymentProcessed: the held units are sold. After a cancellation nothing is held and nothing
    is sold; the payment service refunds that charge."""
    paid = _payload(envelope, PaymentProcessed)
    reservation = await repository.lock_reservation(session, paid.order_id)
    if reservation is None:
        log.warning("paid order has no reservation; nothing to sell")
        return
    products = await repository.lock_products(session, (line.sku for line in reservation.lines))
    if not _apply(sell, reservation, products):
        log.info("payment arrived after the reservation ended; nothing to sell", status=reservation.status.value)
        return
    await repository.save_products(session, products.values())
    await repository.save_reservation(session, reservation)
    log.debug("stock sold")


async def lock_batch(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
    """The worker runs a batch of these events in one transaction. Each handler locks what it needs
    in the common order, but one after another they would not: the batch takes every lock up front,
    reservations by order id and then products by SKU, so two batches never wait in a cycle."""
    order_ids = [
        e.event.order_id for e in envelopes if isinstance(e.event, OrderCreated | OrderCancelled | PaymentProcessed)
    ]
    held = await repository.lock_reservations(session, order_ids)
    skus = {line.sku for reservation in held for line in reservation.lines}
    skus.update(line.sku for e in envelopes if isinstance(e.event, OrderCreated) for line in e.event.items)
    await repository.lock_products(session, skus)


# -- helpers ----------------------------------------------------------------------------------------


def _payload(envelope: Envelope, expected: type[E]) -> E:
    if not isinstance(envelope.event, expected):
        raise NonRetryableError(f"expected {expected.event_type}, got {envelope.event_type}")
    return envelope.event


async def _reservation_or_claim(session: AsyncSession, order_id: UUID) -> Reservation | None:
    """The order's reservation, locked; or None when it has none, and then its row is claimed
    (inserted, hence locked) for this transaction to fill in with `save_reservation`. The insert
    comes first so that two transactions about a new order queue up on that row."""
    if await repository.claim_reservation(session, order_id):
        return None
    return await repository.lock_reservation(session, order_id)


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


async def _emit(session: AsyncSession, events: Iterable[Event], caused_by: Envelope | None = None) -> None:
    await add_to_outbox(session, *(Envelope.new(event, source=SOURCE, caused_by=caused_by) for event in events))
