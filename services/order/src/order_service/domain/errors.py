"""What the order domain refuses. The HTTP layer turns these into 4xx answers."""

from uuid import UUID


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


class ConcurrencyConflict(OrderError):
    """Another writer appended the same version of the order first (the event store's key on
    (order id, version) refuses the second); retrying reloads the order. Writers lock the order's
    row before they fold it, so this means a writer that did not."""

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"order {order_id} was changed concurrently; try again")
        self.order_id = order_id
