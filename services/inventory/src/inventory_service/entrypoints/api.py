"""The inventory's HTTP API: the catalog and the reservations. Routes translate HTTP into a command or
a query and call the service layer, which owns the transaction; refusals are RFC 9457 problems
(shared.problems), mapped from the service's exceptions in one table."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Path, Response, status
from shared.auth import Role, auth_responses, authenticated, requires
from shared.events.base import Sku
from shared.http import SessionDep, create_service_app, serve
from shared.problems import Refusal, problem_responses

from inventory_service.domain import InvalidProduct, StockLimitExceeded
from inventory_service.service_layer import handlers, queries
from inventory_service.service_layer.errors import UnknownProduct, UnknownReservation
from inventory_service.settings import Settings

from .schemas import ProductIn, ProductOut, ReservationOut, RestockIn

SkuPath = Annotated[
    Sku, Path(description="Stock keeping unit: letters, digits, '.', '_' or '-', at most 64", examples=["MUG-BLUE"])
]

router = APIRouter()

# Who may do what (docs/security.md, Roles): an admin writes the catalog; any authenticated caller
# reads it (the storefront shows prices); support and admin read reservations.
ADMIN_ONLY = [Depends(requires(Role.ADMIN))]
ANY_CALLER = [Depends(authenticated)]
STAFF_ONLY = [Depends(requires(Role.SUPPORT, Role.ADMIN))]


@router.put(
    "/products/{sku}",
    tags=["catalog"],
    response_model=ProductOut,
    dependencies=ADMIN_ONLY,
    responses={
        201: {"model": ProductOut, "description": "created"},
        200: {"description": "replaced"},
        **problem_responses({**auth_responses("only an admin writes the catalog"), 422: "the entry makes no sense"}),
    },
)
async def put_product(sku: SkuPath, body: ProductIn, session: SessionDep, response: Response) -> ProductOut:
    """Create or replace a catalog entry; units reserved or sold are kept."""
    put = await handlers.put_product(session, body.to_command(sku))
    response.status_code = status.HTTP_201_CREATED if put.created else status.HTTP_200_OK
    return ProductOut.of(put.product)


@router.post(
    "/products/{sku}/restock",
    tags=["catalog"],
    response_model=ProductOut,
    dependencies=ADMIN_ONLY,
    responses=problem_responses(
        {
            **auth_responses("only an admin restocks"),
            404: "no product with this SKU",
            422: "the stock would exceed its limit",
        }
    ),
)
async def restock(sku: SkuPath, body: RestockIn, session: SessionDep) -> ProductOut:
    """Add units to a product's available stock."""
    return ProductOut.of(await handlers.restock(session, body.to_command(sku)))


@router.get(
    "/products/{sku}",
    tags=["catalog"],
    response_model=ProductOut,
    dependencies=ANY_CALLER,
    responses=problem_responses({**auth_responses(), 404: "no such SKU"}),
)
async def get_product(sku: SkuPath, session: SessionDep) -> ProductOut:
    """A catalog entry with its available, reserved and sold units."""
    return ProductOut.of(await queries.get_product(session, sku))


@router.get(
    "/reservations/{order_id}",
    tags=["reservations"],
    response_model=ReservationOut,
    dependencies=STAFF_ONLY,
    responses=problem_responses(
        {**auth_responses("only support and admin read reservations"), 404: "no reservation for this order (yet)"}
    ),
)
async def get_reservation(order_id: UUID, session: SessionDep) -> ReservationOut:
    """What inventory holds for an order, and whether it was reserved, sold, released or failed."""
    return ReservationOut.of(await queries.get_reservation(session, order_id))


REFUSALS = {
    UnknownProduct: Refusal(404, "product-not-found"),
    UnknownReservation: Refusal(404, "reservation-not-found"),
    InvalidProduct: Refusal(422, "invalid-product"),
    StockLimitExceeded: Refusal(422, "stock-limit-exceeded"),
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
