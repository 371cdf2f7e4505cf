"""The payment service's HTTP API: read-only, an order's payment. Payments are made by the worker.
Refusals are RFC 9457 problems (shared.problems), mapped from the service's exceptions in one table."""

from uuid import UUID

from fastapi import APIRouter, FastAPI
from shared.auth import Caller, Role, auth_responses
from shared.http import SessionDep, create_service_app, serve
from shared.problems import Refusal, problem_responses

from payment_service.service_layer import queries
from payment_service.service_layer.errors import PaymentNotFound
from payment_service.settings import Settings

from .schemas import PaymentOut

router = APIRouter(tags=["payments"])


@router.get(
    "/payments/{order_id}",
    response_model=PaymentOut,
    responses=problem_responses(
        {
            **auth_responses(),
            404: "the payment service has no payment for this order (yet), or it is another customer's",
        }
    ),
)
async def get_payment(order_id: UUID, caller: Caller, session: SessionDep) -> PaymentOut:
    """An order's payment: status, amount, and when it was charged or refunded. A customer sees only
    the payments of its own orders; support and admin see any."""
    owner = caller.subject if caller.role is Role.CUSTOMER else None
    payment = await queries.get_payment(session, order_id, owner=owner)
    return PaymentOut.model_validate(payment, from_attributes=True)


REFUSALS: dict[type[Exception], Refusal] = {PaymentNotFound: Refusal(404, "payment-not-found")}


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
