"""What the order domain refuses. The HTTP layer turns these into 4xx answers."""


class OrderError(Exception):
    """Base class of every refusal of the order domain."""


class InvalidOrder(OrderError):
    """The customer's order cannot be placed as given (422)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OrderNotCancellable(OrderError):
    """The order already ended without a sale, so there is nothing left to cancel (409)."""

    def __init__(self, status: str) -> None:
        super().__init__(f"an order in status {status} cannot be cancelled")
        self.status = status


class CorruptHistory(OrderError):
    """The stored events cannot be an order's history (gap in versions, another order's event,
    no OrderCreated first). Never expected: it means the event store or a rebuild is broken."""
