"""The HTTP API's request and response bodies (the public contract; the tables may differ)."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from shared.api_types import JsonInt, NonBlankText
from shared.events.base import Currency

from inventory_service.domain import MAX_STOCK, CatalogEntry
from inventory_service.service_layer.commands import PutProduct, Restock
from inventory_service.service_layer.queries import ProductView, ReservationView

MAX_UNIT_PRICE = 10**12  # minor units: a ten-billion price tag is a typo, not a product

# A JSON integer (2.0 is 2); 2.5, "2" or true where a count or an amount is expected is refused, never rounded.
StockCount = Annotated[JsonInt, Field(ge=0, le=MAX_STOCK)]


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[NonBlankText, Field(min_length=1, max_length=200)]
    unit_price: Annotated[JsonInt, Field(ge=0, le=MAX_UNIT_PRICE, description="Price in the currency's minor units")]
    currency: Annotated[Currency, Field(description="ISO 4217 code")]
    available: Annotated[StockCount, Field(description="Units on sale, not held by any order")]
    reorder_level: Annotated[StockCount, Field(description="A LowStockAlert fires when available falls below")]

    def to_command(self, sku: str) -> PutProduct:
        return PutProduct(sku, CatalogEntry(**self.model_dump()))


class RestockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: Annotated[JsonInt, Field(ge=1, le=MAX_STOCK, description="Units added to available")]

    def to_command(self, sku: str) -> Restock:
        return Restock(sku, self.quantity)


class ProductOut(BaseModel):
    sku: str
    name: str
    unit_price: int
    currency: str
    available: int
    reserved: int = Field(description="Units held for orders awaiting payment")
    sold: int = Field(description="Units of paid orders")
    reorder_level: int
    updated_at: datetime

    @classmethod
    def of(cls, product: ProductView) -> "ProductOut":
        return cls.model_validate(product, from_attributes=True)


class ReservedItem(BaseModel):
    sku: str
    quantity: int
    unit_price: int


class Failure(BaseModel):
    sku: str
    requested: int
    available: int
    reason: Literal["insufficient_stock", "unknown_sku", "currency_mismatch"]


class ReservationOut(BaseModel):
    order_id: UUID
    status: Literal["RESERVED", "SOLD", "RELEASED", "FAILED"]
    items: list[ReservedItem] = Field(description="The lines held, priced from the catalog; empty when FAILED")
    total_amount: int | None = Field(description="Minor units; null when FAILED")
    currency: str | None
    failures: list[Failure] = Field(description="Why the reservation failed; empty otherwise")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, reservation: ReservationView) -> "ReservationOut":
        return cls.model_validate(reservation, from_attributes=True)
