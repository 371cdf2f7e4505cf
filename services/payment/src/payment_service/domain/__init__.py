"""The payment's pure domain: when a charge or a refund is decided, what the gateway answered,
and the card gateway contract."""

from .errors import ConflictingFact, GatewayUnavailable, PaymentError, PaymentNotDue
from .gateway import ChargeResult, PaymentGateway, RefundResult, TestCardGateway
from .payment import ChargeCall, GatewayCall, Payment, PaymentStatus, RefundCall, retry_delay

__all__ = [
    "ChargeCall",
    "ChargeResult",
    "ConflictingFact",
    "GatewayCall",
    "GatewayUnavailable",
    "Payment",
    "PaymentError",
    "PaymentGateway",
    "PaymentNotDue",
    "PaymentStatus",
    "RefundCall",
    "RefundResult",
    "TestCardGateway",
    "retry_delay",
]
