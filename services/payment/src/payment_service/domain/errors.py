"""What the payment domain refuses. None of these is expected in a correct run: each stops the
message (retried, then dead-lettered) instead of risking a wrong charge or a lost refund."""


class PaymentError(Exception):
    """Base class of every refusal of the payment domain."""


class ConflictingFact(PaymentError):
    """A fact about the order was told twice with different values (another token, amount...)."""


class PaymentNotDue(PaymentError):
    """A gateway answer was recorded for a charge or refund that is not due: a handler bug."""


class RefundRefused(PaymentError):
    """The gateway would not refund a cancelled order's charge; a human must look at it."""
