"""A product of the catalog and its stock counters.

Stock is split in three counters whose sum `on_hand` only changes by restocking or by a catalog
update: a reservation moves units from `available` to `reserved`, a sale from `reserved` to
`sold`, a release back to `available`. Every move goes through one method that refuses to drive a
counter below zero, so a bug cannot silently create or destroy stock.

The low-stock rule is here once: a change that takes a product's available stock below its reorder
level (listing it, replacing its entry, holding units for an order) returns the LowStockAlert.
"""

import re
from dataclasses import dataclass
from typing import Literal

from shared.events import LowStockAlert

from .errors import InvalidProduct, StockInvariantViolated, StockLimitExceeded

# Per counter: far beyond any real warehouse, well inside a Postgres integer. The HTTP API's
# validation uses it too, so a request that would break it is refused before it reaches a rule.
MAX_STOCK = 1_000_000_000

_CURRENCY = re.compile(r"^[A-Z]{3}$")

Counter = Literal["available", "reserved", "sold"]


@dataclass(frozen=True)
class CatalogEntry:
    """What the catalog says about a product (PUT /products/{sku}): the units held by orders or
    sold are not the catalog's to set."""

    name: str
    unit_price: int  # minor units of `currency`
    currency: str  # ISO 4217
    available: int
    reorder_level: int

    def __post_init__(self) -> None:
        _check_catalog_entry(self.name, self.unit_price, self.currency, self.available, self.reorder_level)


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

    @classmethod
    def listed(cls, sku: str, entry: CatalogEntry) -> "Product":
        """A new product of the catalog: its entry, nothing reserved or sold yet."""
        return cls(
            sku, entry.name, entry.unit_price, entry.currency, entry.available, reorder_level=entry.reorder_level
        )

    @property
    def is_low(self) -> bool:
        return self.available < self.reorder_level

    def low_stock_alert(self, *, was_low: bool) -> LowStockAlert | None:
        """The alert a change owes when it took the product below its reorder level (`was_low`: the
        product was low before it; a new product was not). Only the crossing alerts, so a product
        that stays low does not alert on every order; restocks and releases only add, and never do."""
        if not self.is_low or was_low:
            return None
        return LowStockAlert(sku=self.sku, available=self.available, reorder_level=self.reorder_level)

    def restock(self, quantity: int) -> None:
        if quantity < 1:
            raise InvalidProduct(f"{self.sku}: a restock adds at least one unit, got {quantity}")
        if self.available + quantity > MAX_STOCK:
            raise StockLimitExceeded(f"{self.sku}: {self.available} available plus {quantity} exceeds {MAX_STOCK}")
        self.available += quantity

    def replace_catalog_entry(self, entry: CatalogEntry) -> LowStockAlert | None:
        """PUT semantics: the catalog fields are replaced; units held by open reservations and
        units sold are not the catalog's to change, so they are kept."""
        was_low = self.is_low
        self.name = entry.name
        self.unit_price = entry.unit_price
        self.currency = entry.currency
        self.available = entry.available
        self.reorder_level = entry.reorder_level
        return self.low_stock_alert(was_low=was_low)

    # -- stock moves, used by reservations --------------------------------------------------------

    def hold(self, quantity: int) -> LowStockAlert | None:
        was_low = self.is_low
        self._move(quantity, "available", "reserved")
        return self.low_stock_alert(was_low=was_low)

    def unhold(self, quantity: int) -> None:
        self._move(quantity, "reserved", "available")

    def sell_held(self, quantity: int) -> None:
        self._move(quantity, "reserved", "sold")

    def take_back_sold(self, quantity: int) -> None:
        self._move(quantity, "sold", "available")

    def _move(self, quantity: int, source: Counter, target: Counter) -> None:
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
