"""The payment service's HTTP API: read-only, an order's payment. Payments are made by the worker."""

from uuid import UUID

from fastapi import APIRouter, FastAPI, HTTPException, status
from shared.http import SessionDep, create_service_app, serve

from payment_service import views
from payment_service.settings import Settings

from .schemas import PaymentOut, Problem

router = APIRouter(tags=["payments"])


@router.get("/payments/{order_id}", response_model=PaymentOut, responses={404: {"model": Problem}})
async def get_payment(order_id: UUID, session: SessionDep) -> PaymentOut:
    """An order's payment: status, amount, and when it was charged or refunded."""
    row = await views.payment(session, order_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no payment for order {order_id}")
    return PaymentOut.model_validate(row)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Payment service",
        description="Charges an order once inventory reserved its stock (StockReserved) and refunds it when "
        "the order is cancelled after the charge. At most one charge per order, ever.",
        routers=[router],
    )


def main() -> None:
    serve("payment_service.entrypoints.api:create_app", Settings())
