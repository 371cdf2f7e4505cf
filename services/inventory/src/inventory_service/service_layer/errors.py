"""Refusals of the use cases beyond the domain's own (inventory_service.domain.errors)."""

from uuid import UUID


class UnknownProduct(Exception):
    """No catalog entry has this SKU."""

    def __init__(self, sku: str) -> None:
        super().__init__(f"no product with SKU {sku}")
        self.sku = sku


class UnknownReservation(Exception):
    """Inventory has not seen the order (yet): its OrderCreated may still be on its way."""

    def __init__(self, order_id: UUID) -> None:
        super().__init__(f"no reservation for order {order_id}")
        self.order_id = order_id
