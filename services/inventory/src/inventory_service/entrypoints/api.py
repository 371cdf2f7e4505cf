"""The inventory's HTTP API: the catalog and the reservations. Routes translate HTTP into a command or
a query; the service layer does the work inside the transaction the route opens. Refusals are RFC 9457
problems (shared.problems), mapped from the service's exceptions in one table."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, FastAPI, Path, Response, status
from shared.events.base import Sku
from shared.http import SessionDep, create_service_app, serve
from shared.problems import Refusal, problem_responses

from inventory_service import views
from inventory_service.domain import InvalidProduct
from inventory_service.service_layer import handlers
from inventory_service.service_layer.commands import PutProduct, Restock
from inventory_service.settings import Settings

from .schemas import ProductIn, ProductOut, ReservationOut, RestockIn

SkuPath = Annotated[
    Sku, Path(description="Stock keeping unit: letters, digits, '.', '_' or '-', at most 64", examples=["MUG-BLUE"])
]

router = APIRouter()


class UnknownReservation(Exception):
    """Inventory has not seen the order (yet): its OrderCreated may still be on its way."""


@router.put(
    "/products/{sku}",
    tags=["catalog"],
    response_model=ProductOut,
    responses={
        201: {"model": ProductOut, "description": "created"},
        200: {"description": "replaced"},
        **problem_responses({422: "the entry makes no sense (see `detail`)"}),
    },
)
async def put_product(sku: SkuPath, body: ProductIn, session: SessionDep, response: Response) -> ProductOut:
    """Create or replace a catalog entry; units reserved or sold are kept."""
    async with session.begin():
        created = await handlers.put_product(session, PutProduct(sku=sku, **body.model_dump()))
        row = await views.product(session, sku)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return ProductOut.model_validate(row)


@router.post(
    "/products/{sku}/restock",
    tags=["catalog"],
    response_model=ProductOut,
    responses=problem_responses({404: "no product with this SKU", 422: "the stock would exceed its limit"}),
)
async def restock(sku: SkuPath, body: RestockIn, session: SessionDep) -> ProductOut:
    """Add units to a product's available stock."""
    async with session.begin():
        await handlers.restock(session, Restock(sku=sku, quantity=body.quantity))
        row = await views.product(session, sku)
    return ProductOut.model_validate(row)


@router.get(
    "/products/{sku}", tags=["catalog"], response_model=ProductOut, responses=problem_responses({404: "no such SKU"})
)
async def get_product(sku: SkuPath, session: SessionDep) -> ProductOut:
    """A catalog entry with its available, reserved and sold units."""
    row = await views.product(session, sku)
    if row is None:
        raise handlers.UnknownProduct(sku)
    return ProductOut.model_validate(row)


@router.get(
    "/reservations/{order_id}",
    tags=["reservations"],
    response_model=ReservationOut,
    responses=problem_responses({404: "inventory has no reservation for this order (yet)"}),
)
async def get_reservation(order_id: UUID, session: SessionDep) -> ReservationOut:
    """What inventory holds for an order, and whether it was reserved, sold, released or failed."""
    row = await views.reservation(session, order_id)
    if row is None:
        raise UnknownReservation(f"no reservation for order {order_id}")
    return ReservationOut.model_validate({**row, "items": row["lines"]})


REFUSALS = {
    handlers.UnknownProduct: Refusal(404, "product-not-found", lambda exc: f"no product with SKU {exc}"),
    UnknownReservation: Refusal(404, "reservation-not-found"),
    InvalidProduct: Refusal(422, "invalid-product"),
    handlers.StockLimitExceeded: Refusal(422, "stock-limit-exceeded"),
}


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Inventory service",
        description="The product catalog and its stock. Stock is reserved for orders all-or-nothing when "
        "an OrderCreated event arrives, sold on PaymentProcessed and released on OrderCancelled.",
        routers=[router],
        refusals=REFUSALS,
    )


def main() -> None:
    serve("inventory_service.entrypoints.api:create_app", Settings())
