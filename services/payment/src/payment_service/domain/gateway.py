"""The card gateway the payment service charges through, and the built-in test gateway.

The protocol is what any real gateway adapter implements. Both calls take an idempotency key: a
charge or refund retried with the same key (after a crash, a timeout, a redelivered message) is
answered with the first result instead of moving money again. When there is no answer (the
gateway is unreachable or failing), an adapter raises GatewayUnavailable; the caller cuts a call
that takes too long with its own timeout.
"""

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID, uuid5


@dataclass(frozen=True)
class ChargeResult:
    approved: bool
    payment_id: UUID | None = None  # the gateway's id of the charge, when approved
    decline_reason: str | None = None  # e.g. card_declined, insufficient_funds, when declined

    def __post_init__(self) -> None:
        if self.approved and self.payment_id is None:
            raise ValueError("an approved charge has a payment id")
        if not self.approved and not self.decline_reason:
            raise ValueError("a declined charge has a decline reason")


@dataclass(frozen=True)
class RefundResult:
    refunded: bool
    refund_id: UUID | None = None
    failure_reason: str | None = None

    def __post_init__(self) -> None:
        if self.refunded and self.refund_id is None:
            raise ValueError("a refund that went through has a refund id")
        if not self.refunded and not self.failure_reason:
            raise ValueError("a failed refund has a reason")


class PaymentGateway(Protocol):
    async def charge(self, *, token: str, amount: int, currency: str, idempotency_key: str) -> ChargeResult: ...

    async def refund(self, *, payment_id: UUID, amount: int, currency: str, idempotency_key: str) -> RefundResult: ...


# Stripe's test tokens (https://docs.stripe.com/testing): the outcome is a property of the token.
APPROVED_TEST_TOKENS = frozenset({"tok_visa", "tok_mastercard", "tok_amex"})
DECLINED_TEST_TOKENS = {
    "tok_chargeDeclined": "card_declined",
    "tok_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "tok_chargeDeclinedExpiredCard": "expired_card",
}
UNKNOWN_TOKEN_REASON = "invalid_token"
# A test token followed by `_` and anything (`tok_visa_3f9a2c`) behaves as the test token: a test
# that must find its very token (nowhere in clear, end to end) makes one no other order uses.
DISTINCT_SUFFIX = "_"

# Fixed forever: ids derived from them must stay the same across releases and restarts.
_CHARGE_NAMESPACE = UUID("6f1c7e52-3b7a-4c55-9d0e-2a3f1b8c9d40")
_REFUND_NAMESPACE = UUID("a4e2d9c1-5f3b-4e8a-b7c6-0d1e2f3a4b5c")


class TestCardGateway:
    """A gateway that moves no money and needs no network: the answer depends on the token only,
    and ids derive from the idempotency key, so a retry gets the very same answer (what a real
    gateway's Idempotency-Key header gives)."""

    __test__ = False  # a gateway, not a pytest test class, despite its name

    async def charge(self, *, token: str, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        card = _test_card(token)
        if card in APPROVED_TEST_TOKENS:
            return ChargeResult(approved=True, payment_id=uuid5(_CHARGE_NAMESPACE, idempotency_key))
        return ChargeResult(approved=False, decline_reason=DECLINED_TEST_TOKENS.get(card, UNKNOWN_TOKEN_REASON))

    async def refund(self, *, payment_id: UUID, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        return RefundResult(refunded=True, refund_id=uuid5(_REFUND_NAMESPACE, idempotency_key))


def _test_card(token: str) -> str:
    """The test token `token` stands for: itself, or the test token it extends with a suffix."""
    for card in (*APPROVED_TEST_TOKENS, *DECLINED_TEST_TOKENS):
        if token == card or token.startswith(card + DISTINCT_SUFFIX):
            return card
    return token
