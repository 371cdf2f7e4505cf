"""Refusals of the use cases beyond the domain's own (payment_service.domain.errors)."""

from uuid import UUID


class PaymentNotFound(Exception):
    """The payment service has not seen the order (yet): its OrderCreated may still be on its way."""

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"no payment for order {order_id}")
        self.order_id = order_id
