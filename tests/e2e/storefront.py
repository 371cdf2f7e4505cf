"""A client of the three public APIs, as outside users call them: nothing here reads a database
or Kafka. It polls with deadlines; it never sleeps to 'let things settle'.

Who calls (docs/security.md, Roles): each customer places and cancels its own orders with its own
token; the shop's staff read what the tests check, support the orders and payments, an admin the
catalog (which it also stocks) and the reservations."""

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from dev_token import mint_token

ORDER_URL = "http://127.0.0.1:8001"
PAYMENT_URL = "http://127.0.0.1:8002"
INVENTORY_URL = "http://127.0.0.1:8003"

TERMINAL_ORDER_STATUSES = {"CONFIRMED", "REJECTED", "CANCELLED"}
# Longer than any run (the fault matrix and the benchmarks included), so no token expires mid-run.
TOKEN_TTL_S = 6 * 3600


@functools.cache
def bearer(subject: str, role: str) -> dict[str, str]:
    """The Authorization header of a caller, its token minted as `make token` mints it (once each)."""
    return {"Authorization": f"Bearer {mint_token(subject, role, ttl_s=TOKEN_TTL_S)}"}


class Timeout(AssertionError):
    pass


async def eventually(
    probe: Callable[[], Awaitable[Any]],
    *,
    timeout: float = 30,
    what: str = "",
    tolerate: tuple[type[Exception], ...] = (),
) -> Any:
    """Call `probe` until it returns something truthy; fail with the last value after `timeout`.
    A probe raising one of `tolerate` counts as "not yet" (a part that is restarting refuses requests)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    interval = 0.05
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except tolerate as exc:
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(interval)
        # Growing intervals: many concurrent waiters must not load the system they are waiting for.
        interval = min(interval * 1.5, 0.5)
    raise Timeout(f"after {timeout}s still waiting for {what}; last seen: {last!r}")


def order_request(items: list[tuple[str, int]], *, token: str, customer_id: str) -> dict:
    """The body of `POST /orders`."""
    return {
        "customer_id": customer_id,
        "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
        "payment_token": token,
    }


@dataclass
class Storefront:
    orders: httpx.AsyncClient  # as support: reads any order; a customer's own writes send its token
    payments: httpx.AsyncClient  # as support
    inventory: httpx.AsyncClient  # as an admin
    # Who placed each order, so that the same customer cancels it.
    placed_by: dict[str, str] = field(default_factory=dict)

    @classmethod
    def connect(cls, *, timeout: float = 30, connections: int = 100) -> "Storefront":
        # An idle connection is let go before uvicorn's 5 s keep-alive closes it: reusing one just as
        # the server closes it fails as "server disconnected without sending a response".
        limits = httpx.Limits(
            max_connections=connections, max_keepalive_connections=connections // 2, keepalive_expiry=2.0
        )
        support, admin = bearer("e2e-support", "support"), bearer("e2e-admin", "admin")
        return cls(
            orders=httpx.AsyncClient(base_url=ORDER_URL, timeout=timeout, limits=limits, headers=support),
            payments=httpx.AsyncClient(base_url=PAYMENT_URL, timeout=timeout, limits=limits, headers=support),
            inventory=httpx.AsyncClient(base_url=INVENTORY_URL, timeout=timeout, limits=limits, headers=admin),
        )

    @staticmethod
    def as_customer(customer_id: str) -> dict[str, str]:
        """The headers of a request the customer sends itself (its token)."""
        return bearer(customer_id, "customer")

    async def close(self) -> None:
        for client in (self.orders, self.payments, self.inventory):
            await client.aclose()

    # --- inventory ---------------------------------------------------------------------------------
    async def stock_product(
        self,
        *,
        available: int,
        unit_price: int = 1999,
        currency: str = "EUR",
        reorder_level: int = 0,
        name: str | None = None,
    ) -> str:
        """A fresh SKU with the given stock (fresh, so tests never share stock by accident)."""
        sku = f"T-{uuid.uuid4().hex[:12]}"
        response = await self.inventory.put(
            f"/products/{sku}",
            json={
                "name": name or f"Test product {sku}",
                "unit_price": unit_price,
                "currency": currency,
                "available": available,
                "reorder_level": reorder_level,
            },
        )
        assert response.status_code == 201, response.text
        return sku

    async def product(self, sku: str) -> dict:
        response = await self.inventory.get(f"/products/{sku}")
        assert response.status_code == 200, response.text
        return response.json()

    async def reservation(self, order_id: str) -> dict | None:
        response = await self.inventory.get(f"/reservations/{order_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.json()

    # --- payment -----------------------------------------------------------------------------------
    async def payment(self, order_id: str) -> dict | None:
        response = await self.payments.get(f"/payments/{order_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.json()

    # --- orders ------------------------------------------------------------------------------------
    async def place_order(
        self,
        items: list[tuple[str, int]],
        *,
        token: str = "tok_visa",
        customer_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict:
        response = await self.post_order(
            order_request(items, token=token, customer_id=customer_id or f"cust-{uuid.uuid4().hex[:8]}"),
            idempotency_key=idempotency_key,
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert response.headers["location"] == f"/orders/{body['order_id']}"
        return body

    async def post_order(self, request: dict, *, idempotency_key: str | None = None) -> httpx.Response:
        """The raw answer to `POST /orders` sent by the request's customer, for callers that handle
        failures themselves."""
        headers = self.as_customer(request["customer_id"]) | (
            {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        )
        response = await self.orders.post("/orders", json=request, headers=headers)
        if response.status_code == 202:
            self.placed_by[response.json()["order_id"]] = request["customer_id"]
        return response

    async def order(self, order_id: str, **params: Any) -> dict:
        response = await self.orders.get(f"/orders/{order_id}", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def orders_of(self, customer_id: str, *, status: str | None = None) -> list[dict]:
        """Every order of one customer (optionally in one status), page by page: one request per
        hundred orders, where a GET per order would load the system being watched."""
        params: dict[str, Any] = {"customer_id": customer_id, "limit": 100}
        if status is not None:
            params["status"] = status
        found: list[dict] = []
        while True:
            response = await self.orders.get("/orders", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            found.extend(page["items"])
            if page["next_cursor"] is None:
                return found
            params["cursor"] = page["next_cursor"]

    async def events(self, order_id: str) -> list[dict]:
        response = await self.orders.get(f"/orders/{order_id}/events")
        assert response.status_code == 200, response.text
        return response.json()

    async def cancel(self, order_id: str, *, customer_id: str | None = None) -> httpx.Response:
        """The customer who placed the order cancels it (another customer, or an order this
        storefront did not place, is answered 404)."""
        customer = customer_id or self.placed_by.get(order_id, "e2e-nobody")
        return await self.orders.post(f"/orders/{order_id}/cancel", headers=self.as_customer(customer))

    async def wait_for_status(self, order_id: str, *statuses: str, timeout: float = 30) -> dict:
        """The order once in one of these statuses; a CONFIRMED one once priced too: the payment's
        answer may overtake the reservation that prices it (two topics, no order between them)."""

        async def probe() -> dict | None:
            order = await self.order(order_id)
            unpriced = order["status"] == "CONFIRMED" and order["total_amount"] is None
            return order if order["status"] in statuses and not unpriced else None

        return await eventually(probe, timeout=timeout, what=f"order {order_id} to be {statuses}")

    async def wait_until_terminal(self, order_id: str, timeout: float = 60) -> dict:
        return await self.wait_for_status(order_id, *TERMINAL_ORDER_STATUSES, timeout=timeout)
