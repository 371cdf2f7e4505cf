"""The three services' read APIs, as the operator calls them: with a bearer token of the support
role (read-only staff: any order, payment and reservation; docs/security.md, Roles) or whatever
token the operator gives."""

import getpass
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx

from .dev_tokens import SIGNING_KEY, mint_token

LOCAL_ORDER_URL = "http://127.0.0.1:8001"
LOCAL_PAYMENT_URL = "http://127.0.0.1:8002"
LOCAL_INVENTORY_URL = "http://127.0.0.1:8003"
# An order waits for an answer in these states; the others are terminal.
AWAITING_AN_ANSWER = ("PENDING", "AWAITING_PAYMENT")
OPERATOR_ROLE = "support"


class NoToken(Exception):
    """Neither a token was given nor can a development one be minted here."""


@dataclass(frozen=True)
class Endpoints:
    order_url: str = LOCAL_ORDER_URL
    payment_url: str = LOCAL_PAYMENT_URL
    inventory_url: str = LOCAL_INVENTORY_URL


def operator_token(given: str | None) -> str:
    """The token given (--token / ECOMMERCE_TOKEN), else a development support token minted with the
    local signing key (`make up` makes it), valid for an hour."""
    if given:
        return given
    if not SIGNING_KEY.exists():
        raise NoToken(f"give --token or ECOMMERCE_TOKEN (no development signing key at {SIGNING_KEY})")
    return mint_token(f"ops-{os.environ.get('USER') or getpass.getuser()}", OPERATOR_ROLE)


class ServiceApis:
    """Reads from the three APIs; an absent resource is None, any other refusal raises."""

    def __init__(self, endpoints: Endpoints, token: str, *, timeout_s: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self._orders = httpx.AsyncClient(base_url=endpoints.order_url, headers=headers, timeout=timeout_s)
        self._payments = httpx.AsyncClient(base_url=endpoints.payment_url, headers=headers, timeout=timeout_s)
        self._inventory = httpx.AsyncClient(base_url=endpoints.inventory_url, headers=headers, timeout=timeout_s)

    async def __aenter__(self) -> "ServiceApis":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for client in (self._orders, self._payments, self._inventory):
            await client.aclose()

    async def order(self, order_id: UUID) -> dict[str, Any] | None:
        return await _get(self._orders, f"/orders/{order_id}")

    async def payment(self, order_id: UUID) -> dict[str, Any] | None:
        return await _get(self._payments, f"/payments/{order_id}")

    async def reservation(self, order_id: UUID) -> dict[str, Any] | None:
        return await _get(self._inventory, f"/reservations/{order_id}")

    async def orders_placed_before(self, status: str, before: datetime, *, limit: int) -> list[dict[str, Any]]:
        """At most `limit` orders in `status` placed before `before`, newest first. The API lists
        newest first, so the pages of younger orders are read and skipped: orders waiting for an
        answer are few (the saga deadline ends them), so this stays a page or two."""
        params: dict[str, Any] = {"status": status, "limit": 100}
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            page = await _get(self._orders, "/orders", params=params)
            if page is None:  # no listing at that address: not an order API
                raise LookupError(f"GET {self._orders.base_url}/orders answered 404")
            found += [order for order in page["items"] if datetime.fromisoformat(order["created_at"]) < before]
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        return found[:limit]


async def _get(client: httpx.AsyncClient, path: str, **kwargs: Any) -> dict[str, Any] | None:
    response = await client.get(path, **kwargs)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body
