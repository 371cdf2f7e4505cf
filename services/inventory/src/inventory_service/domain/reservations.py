"""Holding stock for an order: reserve all lines or none, then sell or release what is held.

The caller loads the products of the order (locked, in a fixed SKU order so two workers cannot
deadlock), calls one of these functions, and writes products, reservation and the returned events
in one transaction. A Reservation is kept for every order inventory answered, FAILED ones
included, so a late or repeated message about that order finds it and does nothing twice.

An order has at most one reservation, ever. Normally OrderCreated makes it and OrderCancelled
(later in the same partition) releases it. But an OrderCreated that was dead-lettered and redriven
arrives after its OrderCancelled: then the cancellation leaves a tombstone, a RELEASED reservation
that holds nothing, and the late creation finds it and reserves nothing.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal
from uuid import UUID

from shared.events import (
    Event,
    OrderLine,
    PricedLine,
    ReservationFailure,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)

from .errors import StockInvariantViolated
from .products import Product

FailureReason = Literal["insufficient_stock", "unknown_sku", "currency_mismatch"]


class ReservationStatus(StrEnum):
    RESERVED = "RESERVED"
    SOLD = "SOLD"
    RELEASED = "RELEASED"
    FAILED = "FAILED"


@dataclass(eq=False)
class Reservation:
    order_id: UUID
    lines: tuple[PricedLine, ...]  # priced from the catalog at reservation time; empty when FAILED
    currency: str | None  # None when FAILED
    status: ReservationStatus
    failures: tuple[ReservationFailure, ...] = ()

    @property
    def total_amount(self) -> int:
        return sum(line.quantity * line.unit_price for line in self.lines)


@dataclass(frozen=True)
class ReservationOutcome:
    reservation: Reservation
    events: list[Event] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.reservation.status is ReservationStatus.RESERVED


def reserve(order_id: UUID, lines: Sequence[OrderLine], products: Mapping[str, Product]) -> ReservationOutcome:
    """Hold every line or none. On failure no product changes and every failing SKU is reported."""
    if not lines:
        raise ValueError("an order to reserve has at least one line")
    requested = _quantities_by_sku(lines)
    failures = _failures(requested, products)
    if failures:
        failed = Reservation(order_id, lines=(), currency=None, status=ReservationStatus.FAILED, failures=failures)
        return ReservationOutcome(failed, [StockReservationFailed(order_id=order_id, failures=failures)])

    priced = tuple(
        PricedLine(sku=sku, quantity=quantity, unit_price=products[sku].unit_price)
        for sku, quantity in requested.items()
    )
    currency = products[priced[0].sku].currency
    alerts = [alert for line in priced if (alert := products[line.sku].hold(line.quantity))]
    reservation = Reservation(order_id=order_id, lines=priced, currency=currency, status=ReservationStatus.RESERVED)
    reserved = StockReserved(order_id=order_id, items=priced, total_amount=reservation.total_amount, currency=currency)
    return ReservationOutcome(reservation, [reserved, *alerts])


def on_order_created(
    existing: Reservation | None,
    order_id: UUID,
    lines: Sequence[OrderLine],
    products: Mapping[str, Product],
) -> ReservationOutcome | None:
    """Reserve for a new order. None when the order already has a reservation: it was answered
    before (the same order told twice), or it was cancelled before it reached inventory (a
    tombstone). Then nothing is held and nothing is said: the order is already CANCELLED, and the
    order service ignores a reservation's answer for a cancelled order anyway."""
    if existing is not None:
        return None
    return reserve(order_id, lines, products)


def on_order_cancelled(
    existing: Reservation | None, order_id: UUID, products: Mapping[str, Product]
) -> ReservationOutcome | None:
    """Release what the order holds (StockReleased). With no reservation yet, the outcome is the
    tombstone to store, with no event. None when there is nothing to change: released before, or
    failed, so nothing was held."""
    if existing is None:
        return ReservationOutcome(_tombstone(order_id))
    events = release(existing, products)
    return ReservationOutcome(existing, events) if events else None


def on_payment_processed(existing: Reservation | None, products: Mapping[str, Product]) -> ReservationOutcome | None:
    """Sell what the order holds (no event: the order service learns of the payment from payment).
    None when nothing is held: the order has no reservation, or it ended before the payment came."""
    if existing is None or not sell(existing, products):
        return None
    return ReservationOutcome(existing)


def release(reservation: Reservation, products: Mapping[str, Product]) -> list[Event]:
    """The order was cancelled: what it holds, reserved or already sold, is available again.
    A reservation that holds nothing (released before, or failed) releases nothing."""
    if reservation.status is ReservationStatus.RESERVED:
        _move_lines(reservation, products, Product.unhold, ReservationStatus.RELEASED)
    elif reservation.status is ReservationStatus.SOLD:
        _move_lines(reservation, products, Product.take_back_sold, ReservationStatus.RELEASED)
    else:
        return []
    items = tuple(OrderLine(sku=line.sku, quantity=line.quantity) for line in reservation.lines)
    return [StockReleased(order_id=reservation.order_id, items=items)]


def sell(reservation: Reservation, products: Mapping[str, Product]) -> bool:
    """The order was paid: held units become sold. Returns whether anything was sold; a payment
    that arrives after the release (the order was cancelled first) sells nothing, and the payment
    service refunds it."""
    if reservation.status is not ReservationStatus.RESERVED:
        return False
    _move_lines(reservation, products, Product.sell_held, ReservationStatus.SOLD)
    return True


def _move_lines(
    reservation: Reservation,
    products: Mapping[str, Product],
    move: Callable[[Product, int], None],
    status: ReservationStatus,
) -> None:
    """The steps a release and a sale share: every line's units moved between two counters of its
    product, then the reservation in its new status."""
    for line in reservation.lines:
        move(_product(products, line.sku, reservation), line.quantity)
    reservation.status = status


def _tombstone(order_id: UUID) -> Reservation:
    # RELEASED: the order's claim on stock is over, and no line was ever held or priced.
    return Reservation(order_id, lines=(), currency=None, status=ReservationStatus.RELEASED)


def _quantities_by_sku(lines: Sequence[OrderLine]) -> dict[str, int]:
    # The order service refuses duplicate SKUs; summing them anyway keeps the stock check right.
    quantities: dict[str, int] = {}
    for line in lines:
        quantities[line.sku] = quantities.get(line.sku, 0) + line.quantity
    return quantities


def _failures(requested: Mapping[str, int], products: Mapping[str, Product]) -> tuple[ReservationFailure, ...]:
    """One failure per failing SKU. An order is charged in one currency, so the first known line's
    currency is the order's and lines priced in another one are the mismatched ones."""
    known = [products[sku] for sku in requested if sku in products]
    order_currency = known[0].currency if known else None
    failures = []
    for sku, quantity in requested.items():
        product = products.get(sku)
        if product is None:
            failures.append(ReservationFailure(sku=sku, requested=quantity, available=0, reason="unknown_sku"))
        elif product.currency != order_currency:
            failures.append(_failure(product, quantity, "currency_mismatch"))
        elif product.available < quantity:
            failures.append(_failure(product, quantity, "insufficient_stock"))
    return tuple(failures)


def _failure(product: Product, quantity: int, reason: FailureReason) -> ReservationFailure:
    return ReservationFailure(sku=product.sku, requested=quantity, available=product.available, reason=reason)


def _product(products: Mapping[str, Product], sku: str, reservation: Reservation) -> Product:
    try:
        return products[sku]
    except KeyError:
        raise StockInvariantViolated(f"reservation of order {reservation.order_id} holds unknown {sku}") from None
