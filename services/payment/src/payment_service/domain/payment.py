"""One order's payment: gathers the facts it needs, in whatever order they arrive, decides when a
charge or a refund is due, and records the gateway's answers. It never calls the gateway (that is
I/O), and no gateway call happens inside a transaction that holds the payment's row lock.

Facts come from two topics that are not ordered with respect to each other: OrderCreated (the
payment token) and OrderCancelled on order-events, StockReserved (amount and currency) on
inventory-events. So a cancellation can arrive before the amount, and it must then void the
payment for good: at most one charge per order, ever, and none for an order cancelled first.

Money moves in two steps, with the decision written down before the call:

1. An event handler records a fact; when that makes a charge (or a refund) due, the payment
   becomes CHARGING (or REFUNDING) with its idempotency key and the gateway it is made at. That is
   the intent, committed with the fact.
2. The executor claims a due intent (`claim`), asks the gateway outside any transaction, then
   records the answer (`record_charge` / `record_refund`) or the failure (`record_call_failed`,
   retried later with the same key: a retry is the same charge at the gateway, never a second).

A crash anywhere leaves either no intent (nothing was asked) or an open one, which is asked again
with its key until the gateway answers. A cancellation while CHARGING is noted, not applied: the
gateway may have charged already, so the answer decides (charged: refund at once; declined: done).

    AWAITING_DETAILS --token+amount--> CHARGING --approved--> CHARGED --cancel--> REFUNDING --> REFUNDED
          |                               |  (cancelled meanwhile: straight on to REFUNDING)   `-> REFUND_REFUSED
          `--cancel--> VOIDED             `--declined--> DECLINED
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar
from uuid import UUID

from shared.events import Event, PaymentFailed, PaymentProcessed, RefundIssued
from shared.events.base import require_aware

from .errors import ConflictingFact, PaymentNotDue
from .gateway import ChargeResult, RefundResult

T = TypeVar("T")


class PaymentStatus(StrEnum):
    AWAITING_DETAILS = "AWAITING_DETAILS"  # token or amount still unknown, nothing charged
    CHARGING = "CHARGING"  # the charge is decided and its key recorded; the gateway's answer is not
    CHARGED = "CHARGED"
    DECLINED = "DECLINED"
    REFUNDING = "REFUNDING"  # charged, then cancelled: the refund is decided; its answer is not
    REFUNDED = "REFUNDED"
    REFUND_REFUSED = "REFUND_REFUSED"  # the gateway will not refund: a human must settle it
    VOIDED = "VOIDED"  # cancelled before any charge: never charged later


# The statuses in which a gateway call is decided and its answer still missing.
OPEN_INTENTS = frozenset({PaymentStatus.CHARGING, PaymentStatus.REFUNDING})
# The statuses in which a charge may still need the payment token. Past them the token is forgotten
# (a refund goes by the gateway's payment id), and a token told later is not kept.
NEEDS_TOKEN = frozenset({PaymentStatus.AWAITING_DETAILS, PaymentStatus.CHARGING})


@dataclass(frozen=True)
class ChargeCall:
    """What to ask the gateway to charge. The token is sealed: the executor opens it just before
    the call (service_layer/gateway_calls.py)."""

    sealed_token: str
    amount: int
    currency: str
    idempotency_key: str


@dataclass(frozen=True)
class RefundCall:
    """What to ask the gateway to refund."""

    payment_id: UUID
    amount: int
    currency: str
    idempotency_key: str


GatewayCall = ChargeCall | RefundCall


@dataclass(eq=False)
class Payment:
    order_id: UUID
    # Whose order it is (OrderCreated): a customer may see only its own orders' payments. None until
    # OrderCreated arrives, and for payments recorded before it was kept (migration 0005).
    customer_id: str | None = None
    payment_token: str | None = field(default=None, repr=False)  # sealed for this service; None once unneeded
    amount: int | None = None  # minor units of `currency`
    currency: str | None = None
    status: PaymentStatus = PaymentStatus.AWAITING_DETAILS
    payment_id: UUID | None = None
    failure_reason: str | None = None
    charged_at: datetime | None = None
    cancelled_at: datetime | None = None
    refund_id: UUID | None = None
    refunded_at: datetime | None = None
    # The intent: which gateway the money moves at (an idempotency key means something only to
    # the gateway that saw it), under which keys, and when the executor may ask (again).
    gateway: str | None = None
    charge_key: str | None = None
    charge_requested_at: datetime | None = None
    refund_key: str | None = None
    attempts: int = 0  # gateway calls made for the open intent
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    # Where the open intent was decided, as a W3C traceparent: the executor's call and the events of
    # its answer continue that trace (shared.tracing). Opaque to the rules here.
    traceparent: str | None = None

    # -- facts from the other services ------------------------------------------------------------

    def record_order(self, payment_token: str, customer_id: str | None = None) -> None:
        """OrderCreated: how the customer pays (the token as sealed by the order service). Not kept
        once no charge can need it: the payment was voided first, or its charge is answered."""
        if customer_id is not None:
            self.customer_id = _same_or_first(self.customer_id, customer_id, "customer", self)
        if self.status in NEEDS_TOKEN:
            self.payment_token = _same_or_first(self.payment_token, payment_token, "payment token", self, shown=False)

    def record_reservation(self, amount: int, currency: str) -> None:
        """StockReserved: how much to charge. Kept even after a cancellation, for the record."""
        self.amount = _same_or_first(self.amount, amount, "amount", self)
        self.currency = _same_or_first(self.currency, currency, "currency", self)

    def request_charge(self, gateway: str, now: datetime) -> bool:
        """After any fact: once the token and the amount are known, and the order was not
        cancelled first, decide the charge at `gateway`. True when the intent was recorded now."""
        require_aware(now)
        if not (self.status is PaymentStatus.AWAITING_DETAILS and self.payment_token and self.amount is not None):
            return False
        self.status = PaymentStatus.CHARGING
        self.gateway = gateway
        # One key per order: a retried charge is the same charge at the gateway, never a second.
        self.charge_key = f"charge:{self.order_id}"
        self.charge_requested_at = now
        self._open_intent(now)
        return True

    def cancel(self, now: datetime) -> None:
        """OrderCancelled (or OrderRejected). Before any charge the payment is voided for good;
        while the charge is in flight the cancellation waits for the gateway's answer; after a
        charge a refund is decided. A declined or refunded payment has nothing left to undo."""
        require_aware(now)
        if self.cancelled_at is not None:
            return  # told again
        if self.status is PaymentStatus.AWAITING_DETAILS:
            self.status = PaymentStatus.VOIDED
            self.cancelled_at = now
            self.payment_token = None  # never charged: nothing will need it
        elif self.status is PaymentStatus.CHARGING:
            self.cancelled_at = now
        elif self.status is PaymentStatus.CHARGED:
            self.cancelled_at = now
            self._request_refund(now)

    # -- the executor's side: claim, answer, failure ------------------------------------------------

    @property
    def pending_call(self) -> GatewayCall | None:
        """The gateway call the open intent stands for, or None when there is none."""
        if self.status is PaymentStatus.CHARGING:
            assert self.payment_token and self.amount is not None and self.currency and self.charge_key
            return ChargeCall(self.payment_token, self.amount, self.currency, self.charge_key)
        if self.status is PaymentStatus.REFUNDING:
            assert self.payment_id and self.amount is not None and self.currency and self.refund_key
            return RefundCall(self.payment_id, self.amount, self.currency, self.refund_key)
        return None

    def claim(self, now: datetime, lease: timedelta) -> GatewayCall:
        """An executor is about to make the call: nobody else makes it before `now + lease` (a dead
        executor's claim runs out, and the next one asks again with the same key)."""
        call = self._open_call()
        require_aware(now)
        self.attempts += 1
        self.next_attempt_at = now + lease
        return call

    def record_call_failed(self, error: str, now: datetime, retry_in: timedelta) -> None:
        """No answer (timeout, gateway down): the intent stays open and is asked again later."""
        self._open_call()
        require_aware(now)
        self.last_error = error
        self.next_attempt_at = now + retry_in

    def record_charge(self, result: ChargeResult, now: datetime) -> list[Event]:
        """The gateway's answer to the charge. A charge of an order cancelled meanwhile is
        refunded at once: PaymentProcessed (the money moved) then, later, RefundIssued."""
        if self.status is not PaymentStatus.CHARGING:
            raise PaymentNotDue(f"no charge is due for order {self.order_id} ({self.status})")
        require_aware(now)
        assert self.amount is not None and self.currency is not None  # CHARGING says so
        self._close_intent()
        self.payment_token = None  # answered: no charge needs it again, and a refund goes by payment id
        if not result.approved:
            self.status = PaymentStatus.DECLINED
            self.failure_reason = result.decline_reason
            reason = result.decline_reason or "declined"
            return [PaymentFailed(order_id=self.order_id, amount=self.amount, currency=self.currency, reason=reason)]
        assert result.payment_id is not None  # ChargeResult says so
        self.status = PaymentStatus.CHARGED
        self.payment_id = result.payment_id
        self.charged_at = now
        if self.cancelled_at is not None:
            self._request_refund(now)
        return [
            PaymentProcessed(
                order_id=self.order_id, payment_id=result.payment_id, amount=self.amount, currency=self.currency
            )
        ]

    def record_refund(self, result: RefundResult, now: datetime) -> list[Event]:
        """The gateway's answer to the refund. A refusal is final at the gateway (the same key gets
        the same refusal), so the payment ends REFUND_REFUSED for a human rather than asking forever."""
        if self.status is not PaymentStatus.REFUNDING:
            raise PaymentNotDue(f"no refund is due for order {self.order_id} ({self.status})")
        require_aware(now)
        self._close_intent()
        if not result.refunded:
            self.status = PaymentStatus.REFUND_REFUSED
            self.failure_reason = result.failure_reason
            return []
        assert self.payment_id is not None and self.amount is not None and self.currency is not None
        self.status = PaymentStatus.REFUNDED
        self.refund_id = result.refund_id
        self.refunded_at = now
        return [
            RefundIssued(order_id=self.order_id, payment_id=self.payment_id, amount=self.amount, currency=self.currency)
        ]

    # -- helpers ----------------------------------------------------------------------------------

    def _request_refund(self, now: datetime) -> None:
        self.status = PaymentStatus.REFUNDING
        self.refund_key = f"refund:{self.order_id}"
        self._open_intent(now)

    def _open_intent(self, now: datetime) -> None:
        self.attempts = 0
        self.next_attempt_at = now  # due at once
        self.last_error = None

    def _close_intent(self) -> None:
        self.next_attempt_at = None
        self.last_error = None

    def _open_call(self) -> GatewayCall:
        call = self.pending_call
        if call is None:
            raise PaymentNotDue(f"no gateway call is due for order {self.order_id} ({self.status})")
        return call


def retry_delay(attempts: int, *, base: timedelta, cap: timedelta) -> timedelta:
    """How long an intent waits after its `attempts`-th failed call: base, doubling, capped. Doubled
    step by step up to the cap, never as `base * 2 ** n`: after the 48th failed call (a 12-minute
    outage at 1 s doubling to 15 s) that product no longer fits a timedelta (OverflowError)."""
    delay = base
    for _ in range(attempts - 1):
        if delay >= cap:
            break
        delay *= 2
    return min(cap, delay)


def _same_or_first(known: T | None, given: T, what: str, payment: Payment, *, shown: bool = True) -> T:
    """A repeated fact is fine (redelivery); a different one means a bug upstream, and charging
    on either value could be wrong, so it is refused loudly (without the values if not `shown`:
    the message reaches logs and dead letters)."""
    if known is not None and known != given:
        values = f" {given!r} differs from {known!r}" if shown else " differs from the one recorded"
        raise ConflictingFact(f"order {payment.order_id}: {what}{values}")
    return given
