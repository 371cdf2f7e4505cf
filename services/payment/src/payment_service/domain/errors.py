"""What the payment domain refuses, and how a gateway call can fail. None of the refusals is
expected in a correct run: each stops the message (dead-lettered) instead of risking a wrong charge."""


class PaymentError(Exception):
    """Base class of every refusal of the payment domain."""


class ConflictingFact(PaymentError):
    """A fact about the order was told twice with different values (another token, amount...)."""


class PaymentNotDue(PaymentError):
    """A gateway answer was recorded for a charge or refund that is not due: a bug."""


class GatewayUnavailable(Exception):
    """The gateway gave no answer: unreachable, timed out, or failed on its side. The call may or
    may not have taken effect, so it is retried later with the same idempotency key. Gateway
    adapters raise this (or a subclass) for every transient failure; never a bare OSError, which
    the consumer runtime would take for a database outage."""
