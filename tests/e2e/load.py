"""Customers who keep buying while parts of the system are being broken (test_fault_matrix.py).

Each order is one POST with its own Idempotency-Key. A 5xx, a refused or broken connection or a
timeout is counted (in the window of the fault under way) and the same request is sent again with
the same key after a backoff, until an answer that is not a 5xx: a client's retry must never make a
second order. Any 4xx other than the expected ones fails the test.
"""

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from .storefront import Storefront, order_request

APPROVED, DECLINED = "tok_visa", "tok_chargeDeclined"
CANCEL_ANSWERS = {202, 409}  # 409: already REJECTED or CANCELLED (or an earlier attempt of this cancel went through)
RETRY_BUDGET = 90  # seconds one request may keep failing; the longest fault (Postgres stopped) lasts 10 s


@dataclass(frozen=True)
class Catalog:
    stock: dict[str, int]  # SKU -> initial stock
    plentiful: list[str]  # never runs out
    scarce: list[str]  # runs out early: orders for it end REJECTED


async def stock_catalog(shop: Storefront, *, plentiful: int = 20, scarce: int = 3, scarce_units: int = 30) -> Catalog:
    plenty = [await shop.stock_product(available=1_000_000, unit_price=500 + 250 * i) for i in range(plentiful)]
    few = [await shop.stock_product(available=scarce_units, unit_price=9900) for _ in range(scarce)]
    return Catalog(
        stock={sku: 1_000_000 for sku in plenty} | dict.fromkeys(few, scarce_units), plentiful=plenty, scarce=few
    )


@dataclass(frozen=True)
class Mix:
    declined: float = 0.10  # orders paid with a card the gateway declines
    cancelled: float = 0.07  # orders the customer cancels right after placing them
    scarce: float = 0.15  # orders with a line of a scarce SKU


@dataclass
class Customers:
    """`clients` concurrent customers placing orders at `rate` per second (as far as the system
    answers) until told to stop, and at least `minimum` orders in all."""

    shop: Storefront
    catalog: Catalog
    customer_id: str  # every order of the run is this customer's, so `GET /orders` finds them all
    window: Callable[[], str]  # the fault under way, for counting errors
    minimum: int
    rate: float
    clients: int
    mix: Mix = field(default_factory=Mix)
    seed: int = 20261128

    placed: dict[str, dict] = field(default_factory=dict)  # order id -> the 202 answer's body
    placed_per_window: Counter[str] = field(default_factory=Counter)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)  # (window, 5xx|connection|timeout)
    replayed: int = 0  # 202s answered from an earlier attempt that the client never saw the answer of
    cancel_answers: Counter[int] = field(default_factory=Counter)
    seconds_to_202: list[float] = field(default_factory=list)  # per order, from the first attempt, retries included
    first_post_at: float = 0.0
    last_post_at: float = 0.0
    _next: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        self.first_post_at = time.monotonic()
        async with asyncio.TaskGroup() as clients:
            for _ in range(self.clients):
                clients.create_task(self._client(stop))

    async def _client(self, stop: asyncio.Event) -> None:
        while not (stop.is_set() and self._next >= self.minimum):
            index = self._next
            self._next += 1
            # Paced: order n is due n/rate seconds after the start, so the load spans the faults. The
            # orders due during an outage go out as soon as the system answers again.
            await asyncio.sleep(max(0.0, self.first_post_at + index / self.rate - time.monotonic()))
            await self._order(random.Random(f"{self.seed}-{index}"))

    async def _order(self, rng: random.Random) -> None:
        skus = rng.sample(self.catalog.plentiful, rng.randint(1, 3))
        if rng.random() < self.mix.scarce:
            skus[0] = rng.choice(self.catalog.scarce)
        token = DECLINED if rng.random() < self.mix.declined else APPROVED
        request = order_request([(sku, rng.randint(1, 3)) for sku in skus], token=token, customer_id=self.customer_id)
        key = str(uuid.uuid4())
        started = time.monotonic()
        response = await self._answered(lambda: self.shop.post_order(request, idempotency_key=key))
        assert response.status_code == 202, f"POST /orders answered {response.status_code}: {response.text}"
        self.seconds_to_202.append(time.monotonic() - started)
        order = response.json()
        self.placed[order["order_id"]] = order
        self.placed_per_window[self.window()] += 1
        self.replayed += response.headers.get("idempotent-replayed") == "true"
        self.last_post_at = time.monotonic()
        if rng.random() < self.mix.cancelled:
            await asyncio.sleep(rng.uniform(0, 0.5))  # the customer changes their mind shortly after
            response = await self._answered(lambda: self.shop.cancel(order["order_id"]))
            assert response.status_code in CANCEL_ANSWERS, f"cancel answered {response.status_code}: {response.text}"
            self.cancel_answers[response.status_code] += 1

    async def _answered(self, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        """Send until the answer is not a 5xx, counting each failure; the same request every time."""
        deadline = time.monotonic() + RETRY_BUDGET
        backoff = 0.1
        while True:
            try:
                response = await send()
            except httpx.TimeoutException:
                self.failures[self.window(), "timeout"] += 1
            except httpx.TransportError:
                self.failures[self.window(), "connection"] += 1
            else:
                if response.status_code < 500:
                    return response
                self.failures[self.window(), "5xx"] += 1
            assert time.monotonic() < deadline, f"a request kept failing for {RETRY_BUDGET}s"
            await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
            backoff = min(backoff * 2, 2.0)

    def failures_per_window(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for (window, kind), count in self.failures.items():
            table.setdefault(window, {})[kind] = count
        return table
