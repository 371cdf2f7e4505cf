"""The order service's HTTP API. Routes translate HTTP into a command or query and call the
service layer; refusals become 4xx answers whose `detail` says what is wrong."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, FastAPI, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from shared.http import SessionDep, create_service_app, serve

from order_service.adapters.event_store import ConcurrencyConflict
from order_service.domain import InvalidOrder, OrderNotCancellable, OrderStatus
from order_service.service_layer import handlers, queries
from order_service.service_layer.commands import CancelOrder
from order_service.service_layer.errors import IdempotencyKeyReused, InvalidCursor, OrderNotFound
from order_service.settings import Settings

from .schemas import EventOut, OrderOut, OrderPage, PlaceOrderIn, parse_as_of

DESCRIPTION = """\
Places and cancels orders and shows them. An order is event-sourced: `GET /orders/{order_id}/events`
is its full history, and `?as_of=` / `?version=` show its state at an earlier moment.

An order is PENDING until inventory reserves its stock (AWAITING_PAYMENT, now priced) and payment
charges it (CONFIRMED); it ends REJECTED when stock is missing and CANCELLED when the payment fails
or the customer cancels.
"""

IDEMPOTENCY_KEY_DOC = (
    "Makes the request safe to retry: the same key with the same body returns the order the first "
    "request created; with a different body the answer is 409."
)


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"example": {"detail": description}}}}


router = APIRouter(prefix="/orders", tags=["orders"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: _error("the Idempotency-Key was used with a different body"), 422: _error("invalid order")},
)
async def place_order(
    body: PlaceOrderIn,
    session: SessionDep,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255, description=IDEMPOTENCY_KEY_DOC)
    ] = None,
) -> OrderOut:
    """Place an order; it stays PENDING until inventory and payment have answered."""
    placed = await handlers.place_order(session, body.to_command(idempotency_key))
    response.headers["Location"] = f"/orders/{placed.order.order_id}"
    if placed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return OrderOut.of(placed.order)


@router.get("", responses={422: _error("invalid filter, limit or cursor")})
async def list_orders(
    session: SessionDep,
    customer_id: str | None = None,
    order_status: Annotated[OrderStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> OrderPage:
    """List orders, newest first, optionally of one customer and/or in one status."""
    page = await queries.list_orders(session, limit=limit, customer_id=customer_id, status=order_status, cursor=cursor)
    return OrderPage(items=[OrderOut.of(order) for order in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{order_id}",
    responses={404: _error("no such order (or it did not exist yet then)"), 422: _error("invalid as_of or version")},
)
async def get_order(
    order_id: UUID,
    session: SessionDep,
    as_of: Annotated[str | None, Query(description="ISO-8601 time with offset: the state at that moment")] = None,
    version: Annotated[int | None, Query(ge=1, description="The state after the order's first n events")] = None,
) -> OrderOut:
    """Show an order now, or as it was at a time or version (folded from its events)."""
    if as_of is not None and version is not None:
        raise _Unprocessable("give as_of or version, not both")
    if as_of is None and version is None:
        return OrderOut.of(await queries.get_order(session, order_id))
    try:
        moment = parse_as_of(as_of) if as_of is not None else None
    except ValueError as exc:
        raise _Unprocessable(str(exc)) from None
    return OrderOut.of(await queries.get_order_at(session, order_id, version=version, as_of=moment))


@router.get("/{order_id}/events", responses={404: _error("no such order")})
async def get_order_events(order_id: UUID, session: SessionDep) -> list[EventOut]:
    """The order's full event history, oldest first: its audit trail."""
    return [EventOut.of(event) for event in await queries.get_history(session, order_id)]


@router.post(
    "/{order_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: _error("no such order"), 409: _error("the order is already REJECTED or CANCELLED")},
)
async def cancel_order(order_id: UUID, session: SessionDep) -> OrderOut:
    """Cancel an order; stock is released and a charge refunded by the other services."""
    return OrderOut.of(await handlers.cancel_order(session, CancelOrder(order_id)))


class _Unprocessable(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _answer(code: int) -> object:
    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handler


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's validation errors, as one readable `detail` sentence plus the structured list.
    The rejected input values are left out: they may hold a payment token."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
        for error in exc.errors()
    ]
    detail = "; ".join(_explain(error) for error in errors) or "invalid request"
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


def _explain(error: dict) -> str:
    if error["type"] == "json_invalid":
        return "the body is not valid JSON"
    if error["loc"] == ["body"] and error["type"] == "model_attributes_type":
        return "the body must be a JSON object (sent with Content-Type: application/json)"
    if error["loc"] == ["body"] and error["type"] == "missing":
        return "the body is missing: send the order as a JSON object"
    return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"


ERROR_STATUS: dict[type[Exception], int] = {
    OrderNotFound: 404,
    InvalidOrder: 422,
    InvalidCursor: 422,
    _Unprocessable: 422,
    OrderNotCancellable: 409,
    IdempotencyKeyReused: 409,
    ConcurrencyConflict: 409,
}


def create_app(settings: Settings | None = None) -> FastAPI:
    app = create_service_app(settings or Settings(), title="Order service", description=DESCRIPTION, routers=[router])
    for error, code in ERROR_STATUS.items():
        app.add_exception_handler(error, _answer(code))  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)
    return app


def main() -> None:
    serve("order_service.entrypoints.api:create_app", Settings())
