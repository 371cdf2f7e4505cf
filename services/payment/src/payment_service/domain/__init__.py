"""The payment's pure domain: when a charge or a refund is due, and the card gateway contract."""

from .errors import ConflictingFact, PaymentError, PaymentNotDue, RefundRefused
from .gateway import ChargeResult, PaymentGateway, RefundResult, TestCardGateway
from .payment import Payment, PaymentStatus

__all__ = [
    "ChargeResult",
    "ConflictingFact",
    "Payment",
    "PaymentError",
    "PaymentGateway",
    "PaymentNotDue",
    "PaymentStatus",
    "RefundRefused",
    "RefundResult",
    "TestCardGateway",
]
