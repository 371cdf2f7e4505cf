"""The order service's HTTP API. Routes translate HTTP into a command or query and call the
service layer; refusals are RFC 9457 problems (shared.problems), mapped from the service's
exceptions in one table."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response, status
from pydantic import Field
from shared.api_types import EmptyIsAbsent, NonBlankText
from shared.auth import Caller, Forbidden, Principal, Role, auth_responses, requires
from shared.http import SessionDep, create_service_app, serve
from shared.problems import Refusal, problem_responses
from shared.sealing import Sealer

from order_service.domain import ConcurrencyConflict, InvalidOrder, OrderNotCancellable, OrderStatus
from order_service.service_layer import handlers, queries
from order_service.service_layer.commands import CancelOrder
from order_service.service_layer.errors import IdempotencyKeyReused, InvalidCursor, OrderNotFound
from order_service.settings import Settings

from .schemas import CustomerId, EventOut, OrderOut, OrderPage, PlaceOrderIn, parse_as_of

DESCRIPTION = """\
Places and cancels orders and shows them. An order is event-sourced: `GET /orders/{order_id}/events`
is its full history, and `?as_of=` / `?version=` show its state at an earlier moment.

An order is PENDING until inventory reserves its stock (AWAITING_PAYMENT, now priced) and payment
charges it (CONFIRMED); it ends REJECTED when stock is missing and CANCELLED when the payment fails
or the customer cancels.
"""

IDEMPOTENCY_KEY_DOC = (
    "Makes the request safe to retry: the same key with the same customer and lines returns the order "
    "the first request created (whatever payment token it carries: no trace of a token is kept to "
    "compare); with other lines the answer is 409. Printable ASCII, no space at either end."
)
# A structured-field string of printable ASCII (the IETF idempotency-key draft), 255 at most.
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")]
# What `encode_cursor` produces: unpadded base64url (so no NUL either).
Cursor = Annotated[str, Field(max_length=512, pattern=r"^[A-Za-z0-9_-]*$")]
AsOf = Annotated[NonBlankText, Field(max_length=64)]

router = APIRouter(prefix="/orders", tags=["orders"])

# Who may do what (docs/security.md, Roles): a customer places, reads, lists and cancels its own
# orders; support and admin read and list everyone's and change none.
PlacingCustomer = Annotated[Principal, Depends(requires(Role.CUSTOMER))]
NOT_A_CUSTOMER = "only a customer places and cancels orders, and only as itself"


def _owner(caller: Principal) -> str | None:
    """Whose orders the caller may see: a customer only its own (another's is a 404, so that its
    existence does not leak); support and admin everyone's."""
    return caller.subject if caller.role is Role.CUSTOMER else None


def _placing_as(caller: Principal, body: PlaceOrderIn) -> str:
    if body.customer_id is not None and body.customer_id != caller.subject:
        raise Forbidden("customer_id is not the caller's: place orders as yourself (or leave customer_id out)")
    return caller.subject


async def token_sealer(request: Request) -> Sealer:
    """Seals payment tokens to the payment service's public key (read when the app is made). Async
    so that FastAPI calls it inline: a plain `def` dependency is run in a worker thread, a thread
    hand-off on every POST for a mere attribute read."""
    sealer: Sealer = request.app.state.token_sealer
    return sealer


TokenSealerDep = Annotated[Sealer, Depends(token_sealer)]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(
        {
            **auth_responses(NOT_A_CUSTOMER + " (customer_id must be the caller's)"),
            409: "the Idempotency-Key was used with a different body",
            422: "the order breaks a rule (see `detail`)",
        }
    ),
)
async def place_order(
    caller: PlacingCustomer,
    body: PlaceOrderIn,
    session: SessionDep,
    sealer: TokenSealerDep,
    response: Response,
    idempotency_key: Annotated[
        IdempotencyKey | None, Header(alias="Idempotency-Key", description=IDEMPOTENCY_KEY_DOC)
    ] = None,
) -> OrderOut:
    """Place an order; it stays PENDING until inventory and payment have answered."""
    placed = await handlers.place_order(session, body.to_command(_placing_as(caller, body), idempotency_key), sealer)
    response.headers["Location"] = f"/orders/{placed.order.order_id}"
    if placed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return OrderOut.of(placed.order)


@router.get(
    "",
    responses=problem_responses(
        {**auth_responses("a customer filtering on another customer"), 422: "a cursor this API did not return"}
    ),
)
async def list_orders(
    caller: Caller,
    session: SessionDep,
    customer_id: Annotated[CustomerId | None, Query()] = None,
    order_status: Annotated[OrderStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        Cursor | None, EmptyIsAbsent, Query(description="`next_cursor` of the previous page; empty means none")
    ] = None,
) -> OrderPage:
    """List orders, newest first, optionally of one customer and/or in one status. A customer lists
    only its own."""
    owner = _owner(caller)
    if owner is not None and customer_id not in (None, owner):
        raise Forbidden("a customer lists only its own orders")
    customer_id = owner or customer_id
    page = await queries.list_orders(session, limit=limit, customer_id=customer_id, status=order_status, cursor=cursor)
    return OrderPage(items=[OrderOut.of(order) for order in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{order_id}",
    responses=problem_responses(
        {
            **auth_responses(),
            404: "no such order (or it did not exist yet then, or it is another customer's)",
            422: "as_of is not an ISO-8601 time with an offset, or both as_of and version were given",
        }
    ),
)
async def get_order(
    order_id: UUID,
    caller: Caller,
    session: SessionDep,
    as_of: Annotated[
        AsOf | None,
        EmptyIsAbsent,
        Query(description="ISO-8601 time with offset: the state at that moment; empty means now"),
    ] = None,
    version: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="The state after the order's first n events")
    ] = None,
) -> OrderOut:
    """Show an order now, or as it was at a time or version (folded from its events)."""
    if as_of is not None and version is not None:
        raise _Unprocessable("give as_of or version, not both")
    if as_of is None and version is None:
        return OrderOut.of(await queries.get_order(session, order_id, owner=_owner(caller)))
    try:
        moment = parse_as_of(as_of) if as_of is not None else None
    except ValueError as exc:
        raise _Unprocessable(str(exc)) from None
    return OrderOut.of(
        await queries.get_order_at(session, order_id, version=version, as_of=moment, owner=_owner(caller))
    )


@router.get("/{order_id}/events", responses=problem_responses({**auth_responses(), 404: "no such order"}))
async def get_order_events(order_id: UUID, caller: Caller, session: SessionDep) -> list[EventOut]:
    """The order's full event history, oldest first: its audit trail."""
    return [EventOut.of(event) for event in await queries.get_history(session, order_id, owner=_owner(caller))]


@router.post(
    "/{order_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(
        {
            **auth_responses(NOT_A_CUSTOMER),
            404: "no such order (or another customer's)",
            409: "the order is already REJECTED or CANCELLED",
        }
    ),
)
async def cancel_order(order_id: UUID, caller: PlacingCustomer, session: SessionDep) -> OrderOut:
    """Cancel one of the caller's orders; stock is released and a charge refunded by the other services."""
    return OrderOut.of(await handlers.cancel_order(session, CancelOrder(order_id, owner=caller.subject)))


class _Unprocessable(Exception):
    """A request the schema admits but this operation cannot serve as given."""


REFUSALS = {
    OrderNotFound: Refusal(404, "order-not-found"),
    InvalidOrder: Refusal(422, "invalid-order"),
    InvalidCursor: Refusal(422, "invalid-cursor"),
    _Unprocessable: Refusal(422, "invalid-request"),
    OrderNotCancellable: Refusal(409, "order-not-cancellable"),
    IdempotencyKeyReused: Refusal(409, "idempotency-key-reused"),
    ConcurrencyConflict: Refusal(409, "concurrent-change"),
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings, title="Order service", description=DESCRIPTION, routers=[router], refusals=REFUSALS
    )
    # Read now: without the payment service's public key the API does not start, rather than
    # refusing every order (or, worse, keeping a token unsealed).
    app.state.token_sealer = Sealer.from_file(settings.payment_token_public_key_file)
    return app


def main() -> None:
    serve("order_service.entrypoints.api:create_app", Settings())
