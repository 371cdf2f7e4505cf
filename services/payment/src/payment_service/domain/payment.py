"""One order's payment: gathers the facts it needs, in whatever order they arrive, and decides
when a charge or a refund is due. It never calls the gateway (that is I/O): the handler does, and
hands the gateway's answer back to `record_charge` / `record_refund`.

Facts come from two topics that are not ordered with respect to each other: OrderCreated (the
payment token) and OrderCancelled on order-events, StockReserved (amount and currency) on
inventory-events. So a cancellation can arrive before the amount, and it must then void the
payment for good: at most one charge per order, ever, and none for an order cancelled first.

A handler, per message, in one transaction:

    payment.record_order(token) / payment.record_reservation(amount, currency) / payment.cancel(now)
    if payment.charge_due:
        result = await gateway.charge(token=..., amount=..., currency=...,
                                      idempotency_key=payment.charge_idempotency_key)
        event = payment.record_charge(result, now)
    if payment.refund_due:
        result = await gateway.refund(payment_id=..., amount=..., currency=...,
                                      idempotency_key=payment.refund_idempotency_key)
        event = payment.record_refund(result, now)
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar
from uuid import UUID

from shared.events import PaymentFailed, PaymentProcessed, RefundIssued

from .errors import ConflictingFact, PaymentNotDue, RefundRefused
from .gateway import ChargeResult, RefundResult

T = TypeVar("T")


class PaymentStatus(StrEnum):
    AWAITING_DETAILS = "AWAITING_DETAILS"  # token or amount still unknown, nothing charged
    CHARGED = "CHARGED"
    DECLINED = "DECLINED"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"  # cancelled before any charge: never charged later


@dataclass(eq=False)
class Payment:
    order_id: UUID
    payment_token: str | None = None
    amount: int | None = None  # minor units of `currency`
    currency: str | None = None
    status: PaymentStatus = PaymentStatus.AWAITING_DETAILS
    payment_id: UUID | None = None
    failure_reason: str | None = None
    charged_at: datetime | None = None
    cancelled_at: datetime | None = None
    refund_id: UUID | None = None
    refunded_at: datetime | None = None

    # -- facts from the other services ------------------------------------------------------------

    def record_order(self, payment_token: str) -> None:
        """OrderCreated: how the customer pays."""
        self.payment_token = _same_or_first(self.payment_token, payment_token, "payment token", self)

    def record_reservation(self, amount: int, currency: str) -> None:
        """StockReserved: how much to charge. Kept even after a cancellation, for the record."""
        self.amount = _same_or_first(self.amount, amount, "amount", self)
        self.currency = _same_or_first(self.currency, currency, "currency", self)

    def cancel(self, now: datetime) -> None:
        """OrderCancelled. Before any charge the payment is voided for good; after a charge a
        refund becomes due; a declined, refunded or voided payment has nothing left to undo."""
        _check_aware(now)
        if self.status is PaymentStatus.AWAITING_DETAILS:
            self.status = PaymentStatus.VOIDED
            self.cancelled_at = now
        elif self.status is PaymentStatus.CHARGED and self.cancelled_at is None:
            self.cancelled_at = now

    # -- what is due, and the gateway's answers -----------------------------------------------------

    @property
    def charge_due(self) -> bool:
        # Only from AWAITING_DETAILS: every other status is reached once and never left for it.
        return (
            self.status is PaymentStatus.AWAITING_DETAILS
            and self.payment_token is not None
            and self.amount is not None
        )

    @property
    def refund_due(self) -> bool:
        return self.status is PaymentStatus.CHARGED and self.cancelled_at is not None

    @property
    def charge_idempotency_key(self) -> str:
        # One key per order: a retried charge is the same charge at the gateway, never a second.
        return f"charge:{self.order_id}"

    @property
    def refund_idempotency_key(self) -> str:
        return f"refund:{self.order_id}"

    def record_charge(self, result: ChargeResult, now: datetime) -> PaymentProcessed | PaymentFailed:
        if not self.charge_due:
            raise PaymentNotDue(f"no charge is due for order {self.order_id} ({self.status})")
        _check_aware(now)
        assert self.amount is not None and self.currency is not None  # charge_due says so
        if result.approved:
            assert result.payment_id is not None  # ChargeResult says so
            self.status = PaymentStatus.CHARGED
            self.payment_id = result.payment_id
            self.charged_at = now
            return PaymentProcessed(
                order_id=self.order_id,
                payment_id=result.payment_id,
                amount=self.amount,
                currency=self.currency,
            )
        self.status = PaymentStatus.DECLINED
        self.failure_reason = result.decline_reason
        return PaymentFailed(
            order_id=self.order_id,
            amount=self.amount,
            currency=self.currency,
            reason=result.decline_reason or "declined",
        )

    def record_refund(self, result: RefundResult, now: datetime) -> RefundIssued:
        """Raises RefundRefused when the gateway would not refund: the charge stays due for a refund
        and the message is retried, then dead-lettered for a human, rather than forgotten."""
        if not self.refund_due:
            raise PaymentNotDue(f"no refund is due for order {self.order_id} ({self.status})")
        _check_aware(now)
        if not result.refunded:
            raise RefundRefused(f"order {self.order_id}: refund refused: {result.failure_reason}")
        assert self.payment_id is not None and self.amount is not None and self.currency is not None
        self.status = PaymentStatus.REFUNDED
        self.refund_id = result.refund_id
        self.refunded_at = now
        return RefundIssued(
            order_id=self.order_id, payment_id=self.payment_id, amount=self.amount, currency=self.currency
        )


def _same_or_first(known: T | None, given: T, what: str, payment: Payment) -> T:
    """A repeated fact is fine (redelivery); a different one means a bug upstream, and charging
    on either value could be wrong, so it is refused loudly."""
    if known is not None and known != given:
        raise ConflictingFact(f"order {payment.order_id}: {what} {given!r} differs from {known!r}")
    return given


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("times are UTC and timezone-aware; got a naive datetime")
