"""What the inventory domain refuses."""


class InventoryError(Exception):
    """Base class of every refusal of the inventory domain."""


class InvalidProduct(InventoryError):
    """A catalog entry or a stock change that makes no sense (negative stock, bad currency...)."""


class StockLimitExceeded(InventoryError):
    """A restock would lift the available stock beyond MAX_STOCK."""


class StockInvariantViolated(InventoryError):
    """A stock move would drive a counter below zero or touch a product the reservation does not
    know. Never expected: the caller must stop rather than write stock that does not add up."""
