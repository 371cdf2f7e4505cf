"""Refusals of the use cases beyond the domain's own (order_service.domain.errors)."""

from uuid import UUID


class OrderNotFound(Exception):
    def __init__(self, order_id: UUID, detail: str | None = None) -> None:
        super().__init__(detail or f"order {order_id} does not exist")
        self.order_id = order_id


class IdempotencyKeyReused(Exception):
    """The key was first used with a different request: replaying it would not be the same request."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used with a different request body; use a new key for a new order"
        )
        self.key = key


class InvalidCursor(Exception):
    def __init__(self) -> None:
        super().__init__("cursor is not one this API returned; start again without it")
