"""A product of the catalog and its stock counters.

Stock is split in three counters whose sum `on_hand` only changes by restocking or by a catalog
update: a reservation moves units from `available` to `reserved`, a sale from `reserved` to
`sold`, a release back to `available`. Every move goes through one method that refuses to drive a
counter below zero, so a bug cannot silently create or destroy stock.
"""

import re
from dataclasses import dataclass

from .errors import InvalidProduct, StockInvariantViolated

_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(eq=False)
class Product:
    sku: str
    name: str
    unit_price: int  # minor units of `currency`
    currency: str  # ISO 4217
    available: int
    reserved: int = 0
    sold: int = 0
    reorder_level: int = 0

    def __post_init__(self) -> None:
        if not self.sku:
            raise InvalidProduct("a product has a SKU")
        _check_catalog_entry(self.name, self.unit_price, self.currency, self.available, self.reorder_level)
        if self.reserved < 0 or self.sold < 0:
            raise InvalidProduct(f"{self.sku}: reserved and sold stock cannot be negative")

    @property
    def on_hand(self) -> int:
        """Every unit the warehouse is accountable for, whatever its state."""
        return self.available + self.reserved + self.sold

    @property
    def is_low(self) -> bool:
        return self.available < self.reorder_level

    def restock(self, quantity: int) -> None:
        if quantity < 1:
            raise InvalidProduct(f"{self.sku}: a restock adds at least one unit, got {quantity}")
        self.available += quantity

    def replace_catalog_entry(
        self, *, name: str, unit_price: int, currency: str, available: int, reorder_level: int
    ) -> None:
        """PUT semantics: the catalog fields are replaced; units held by open reservations and
        units sold are not the catalog's to change, so they are kept."""
        _check_catalog_entry(name, unit_price, currency, available, reorder_level)
        self.name = name
        self.unit_price = unit_price
        self.currency = currency
        self.available = available
        self.reorder_level = reorder_level

    # -- stock moves, used by reservations --------------------------------------------------------

    def hold(self, quantity: int) -> None:
        self._move(quantity, "available", "reserved")

    def unhold(self, quantity: int) -> None:
        self._move(quantity, "reserved", "available")

    def sell_held(self, quantity: int) -> None:
        self._move(quantity, "reserved", "sold")

    def take_back_sold(self, quantity: int) -> None:
        self._move(quantity, "sold", "available")

    def _move(self, quantity: int, source: str, target: str) -> None:
        if quantity < 1:
            raise StockInvariantViolated(f"{self.sku}: cannot move {quantity} units")
        if getattr(self, source) < quantity:
            raise StockInvariantViolated(
                f"{self.sku}: cannot move {quantity} units from {source} ({getattr(self, source)})"
            )
        setattr(self, source, getattr(self, source) - quantity)
        setattr(self, target, getattr(self, target) + quantity)


def _check_catalog_entry(name: str, unit_price: int, currency: str, available: int, reorder_level: int) -> None:
    if not name.strip():
        raise InvalidProduct("a product has a name")
    if unit_price < 0:
        raise InvalidProduct(f"a price cannot be negative, got {unit_price}")
    if not _CURRENCY.match(currency):
        raise InvalidProduct(f"currency must be an ISO 4217 code like EUR, got {currency!r}")
    if available < 0:
        raise InvalidProduct(f"available stock cannot be negative, got {available}")
    if reorder_level < 0:
        raise InvalidProduct(f"a reorder level cannot be negative, got {reorder_level}")
