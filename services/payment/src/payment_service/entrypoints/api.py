"""The payment service's HTTP API: read-only, an order's payment. Payments are made by the worker.
Refusals are RFC 9457 problems (shared.problems), mapped from the service's exceptions in one table."""

from uuid import UUID

from fastapi import APIRouter, FastAPI
from shared.http import SessionDep, create_service_app, serve
from shared.problems import Refusal, problem_responses

from payment_service import views
from payment_service.settings import Settings

from .schemas import PaymentOut

router = APIRouter(tags=["payments"])


class UnknownPayment(Exception):
    """The payment service has not seen the order (yet): its OrderCreated may still be on its way."""


@router.get(
    "/payments/{order_id}",
    response_model=PaymentOut,
    responses=problem_responses({404: "the payment service has no payment for this order (yet)"}),
)
async def get_payment(order_id: UUID, session: SessionDep) -> PaymentOut:
    """An order's payment: status, amount, and when it was charged or refunded."""
    row = await views.payment(session, order_id)
    if row is None:
        raise UnknownPayment(f"no payment for order {order_id}")
    return PaymentOut.model_validate(row)


REFUSALS = {UnknownPayment: Refusal(404, "payment-not-found")}


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Payment service",
        description="Charges an order once inventory reserved its stock (StockReserved) and refunds it when "
        "the order is cancelled after the charge. At most one charge per order, ever.",
        routers=[router],
        refusals=REFUSALS,
    )


def main() -> None:
    serve("payment_service.entrypoints.api:create_app", Settings())
