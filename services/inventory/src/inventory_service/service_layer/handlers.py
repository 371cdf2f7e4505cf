"""The inventory's use cases. None touches Kafka.

An API command opens its own transaction: it locks the product it changes, applies the domain,
saves it, adds its events to the outbox, and returns the product as the API shows it. An event
handler runs inside the worker's transaction, on the batch that `unit_of_work.open_batch`
loaded and locked for all of the transaction's events: it applies the domain to that state in
memory, notes what it changed and emits its events; the batch writes them at flush.

Locks are always taken in the same order (reservation rows by order id, then products by SKU), so
concurrent transactions on the same SKUs queue up instead of deadlocking.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar
from uuid import UUID

from shared.consumer import Consumption, payload
from shared.consumer.retry import NonRetryableError
from shared.db import DriverConnection, driver_connection
from shared.events import Envelope, LowStockAlert, OrderCancelled, OrderCreated, PaymentProcessed
from shared.logging import get_logger
from shared.outbox.writer import add_to_outbox
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters import repository
from inventory_service.domain import (
    InventoryError,
    Product,
    Reservation,
    ReservationOutcome,
    on_order_cancelled,
    on_order_created,
    on_payment_processed,
)

from . import queries
from .commands import PutProduct, Restock
from .errors import UnknownProduct
from .queries import ProductView
from .unit_of_work import InventoryBatch, open_batch

log = get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class ProductPut:
    product: ProductView
    created: bool  # False: an existing entry was replaced


# -- commands from the HTTP API ---------------------------------------------------------------------


async def put_product(session: AsyncSession, command: PutProduct) -> ProductPut:
    """Create or replace the entry, alerting if that takes its stock below its reorder level."""
    async with session.begin():
        created, alert = await _put_entry(await driver_connection(session), command)
        if alert is not None:
            await add_to_outbox(session, Envelope.new(alert))
        return ProductPut(await queries.get_product(session, command.sku), created)


async def _put_entry(connection: DriverConnection, command: PutProduct) -> tuple[bool, LowStockAlert | None]:
    """Whether the entry was created, and the alert the change owes."""
    product = await repository.lock_product(connection, command.sku)
    if product is None:
        new = Product.listed(command.sku, command.entry)
        if await repository.add_product(connection, new):
            return True, new.low_stock_alert(was_low=False)
        # A concurrent PUT created the SKU between our look and our insert: replace its entry.
        product = await repository.lock_product(connection, command.sku)
        assert product is not None
    alert = product.replace_catalog_entry(command.entry)
    await repository.save_products(connection, [product])
    return False, alert


async def restock(session: AsyncSession, command: Restock) -> ProductView:
    """Raises UnknownProduct, or StockLimitExceeded (nothing is written)."""
    async with session.begin():
        connection = await driver_connection(session)
        product = await repository.lock_product(connection, command.sku)
        if product is None:
            raise UnknownProduct(command.sku)
        product.restock(command.quantity)
        await repository.save_products(connection, [product])
        return await queries.get_product(session, command.sku)


# -- events from other services ---------------------------------------------------------------------


async def reserve_stock(batch: InventoryBatch, envelope: Envelope) -> None:
    """OrderCreated: hold every line or none, then tell the saga (and warn about low stock)."""
    order = payload(envelope, OrderCreated)
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
    _record(batch, envelope, outcome, products.values() if outcome.succeeded else ())
    log.debug("reservation answered", status=outcome.reservation.status.value)


async def release_stock(batch: InventoryBatch, envelope: Envelope) -> None:
    """OrderCancelled: what the order holds, reserved or sold, becomes available again. An order
    with no reservation yet gets a tombstone, so that its OrderCreated, if it comes after all,
    reserves nothing."""
    order_id = payload(envelope, OrderCancelled).order_id
    existing, products = _held(batch, order_id)
    outcome = _refusing_bad_stock(on_order_cancelled, existing, order_id, products)
    if outcome is None:
        return  # released before, or failed: nothing was held
    _record(batch, envelope, outcome, products.values())
    if existing is None:
        # Its OrderCreated never got here (dead-lettered) or is late; the tombstone awaits it.
        log.warning("cancelled order had no reservation; tombstone left")
    else:
        log.debug("stock released")


async def sell_stock(batch: InventoryBatch, envelope: Envelope) -> None:
    """PaymentProcessed: the held units are sold. After a cancellation nothing is held and nothing
    is sold; the payment service refunds that charge."""
    existing, products = _held(batch, payload(envelope, PaymentProcessed).order_id)
    outcome = _refusing_bad_stock(on_payment_processed, existing, products)
    if outcome is not None:
        _record(batch, envelope, outcome, products.values())
        log.debug("stock sold")
    elif existing is None:
        log.warning("paid order has no reservation; nothing to sell")
    else:
        log.info("payment arrived after the reservation ended; nothing to sell", status=existing.status.value)


# -- helpers ----------------------------------------------------------------------------------------


def _held(batch: InventoryBatch, order_id: UUID) -> tuple[Reservation | None, dict[str, Product]]:
    """The order's reservation as the batch left it, and the products its lines hold."""
    reservation = batch.reservation(order_id)
    return reservation, batch.products(() if reservation is None else (line.sku for line in reservation.lines))


def _refusing_bad_stock(move: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A stock move the domain refuses means stock that does not add up: retrying cannot fix it,
    so the message goes straight to the dead-letter topic for a human."""
    try:
        return move(*args, **kwargs)
    except InventoryError as exc:
        raise NonRetryableError(str(exc)) from exc


def _record(batch: InventoryBatch, envelope: Envelope, outcome: ReservationOutcome, changed: Iterable[Product]) -> None:
    """The reservation and the products the outcome changed, saved at flush; its events, emitted
    as the answer to `envelope`."""
    batch.save(outcome.reservation, changed)
    batch.emit(*(Envelope.new(event, caused_by=envelope) for event in outcome.events))


def _status(reservation: Reservation | None) -> str | None:
    return None if reservation is None else reservation.status.value


def build_handlers() -> Consumption:
    """The worker's handler per event type, and the unit of work each of its transactions opens."""
    return Consumption(
        handlers={
            OrderCreated.event_type: reserve_stock,
            OrderCancelled.event_type: release_stock,
            PaymentProcessed.event_type: sell_stock,
        },
        open_batch=open_batch,
    )
