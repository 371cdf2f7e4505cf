"""The worker's unit of work: the reservations and products one transaction's events touch, loaded
and locked up front (`open_batch`, at the end), changed in memory by the handlers through the domain's
rules, and written back at flush, each kind in one statement however many events the batch holds.

The handlers of one batch share this state, so an event sees what the events before it changed
(an order created and cancelled in one batch, a product reserved by several orders). A batch that
fails is simply thrown away with its transaction; the worker handles its events again one at a time.

A new order's reservation has no row to lock when the batch opens. It is inserted at flush with a
plain INSERT, and that is safe: if a concurrent transaction inserted the same order's row since
(a cancellation leaving its tombstone while a redriven OrderCreated reserves), the INSERT waits for
it and, once it commits, fails on the primary key; the whole batch rolls back, nothing it decided
on the stale "no reservation" is kept, and the one-at-a-time retry finds and locks the row. Waiting
there cannot close a cycle: a transaction holds no new row before its flush, and every flush has
all its other locks already and inserts in order id order.
"""

from collections.abc import Iterable, Sequence
from uuid import UUID

from shared.consumer import SessionBatch
from shared.db import DriverConnection, driver_connection
from shared.events import Envelope, OrderCancelled, OrderCreated, PaymentProcessed
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_service.adapters import repository
from inventory_service.domain import Product, Reservation


class NotLoaded(Exception):
    """A handler asked for a row the batch did not look up when it opened: a bug in `open_batch`,
    which would otherwise pass for an unknown SKU or an order without a reservation."""


class InventoryBatch(SessionBatch):
    def __init__(
        self,
        session: AsyncSession,
        connection: DriverConnection,
        reservations: Iterable[Reservation],
        products: dict[str, Product],
        *,
        order_ids: set[UUID],
        skus: set[str],
    ) -> None:
        """`connection`: the driver under `session`, which the flush writes on; `order_ids` and
        `skus`: what was looked up; `reservations` and `products`: what exists of it."""
        super().__init__(session)
        self._connection = connection
        self._reservations = {reservation.order_id: reservation for reservation in reservations}
        self._loaded = set(self._reservations)
        self._products = products
        self._order_ids, self._skus = order_ids, skus
        self._new: dict[UUID, Reservation] = {}
        self._changed: dict[UUID, Reservation] = {}
        self._changed_products: dict[str, Product] = {}

    def reservation(self, order_id: UUID) -> Reservation | None:
        """The order's reservation as the batch's events so far left it; None if it has none."""
        if order_id not in self._order_ids:
            raise NotLoaded(f"reservation of order {order_id}")
        return self._reservations.get(order_id)

    def products(self, skus: Iterable[str]) -> dict[str, Product]:
        """The known products among `skus` (an unknown SKU is absent), as the batch left them."""
        wanted = dict.fromkeys(skus)
        if missing := wanted.keys() - self._skus:
            raise NotLoaded(f"products {sorted(missing)}")
        return {sku: self._products[sku] for sku in wanted if sku in self._products}

    def save(self, reservation: Reservation, products: Iterable[Product] = ()) -> None:
        """Note a reservation the handler made or changed, and the products it changed: written at
        flush, in their final state, once each."""
        order_id = reservation.order_id
        (self._changed if order_id in self._loaded else self._new)[order_id] = reservation
        self._reservations[order_id] = reservation
        self._changed_products.update((product.sku, product) for product in products)

    async def flush(self) -> None:
        await repository.insert_reservations(self._connection, self._new.values())
        await repository.save_reservations(self._connection, self._changed.values())
        await repository.save_products(self._connection, self._changed_products.values())
        self._new, self._changed, self._changed_products = {}, {}, {}
        await super().flush()  # the outbox rows the handlers emitted


async def open_batch(session: AsyncSession, envelopes: Sequence[Envelope]) -> InventoryBatch:
    """The worker's unit of work for these events: every reservation and product their handlers
    will touch, loaded and locked in two statements, in the common order (reservations by order id,
    then products by SKU), so two batches never wait on each other in a cycle. The products are
    those the orders ask for and those the existing reservations hold (which a cancellation or a
    payment moves); a reservation a batch creates holds only SKUs its OrderCreated asked for."""
    order_ids = {
        e.event.order_id for e in envelopes if isinstance(e.event, OrderCreated | OrderCancelled | PaymentProcessed)
    }
    connection = await driver_connection(session)
    held = await repository.lock_reservations(connection, order_ids)
    skus = {line.sku for reservation in held for line in reservation.lines}
    skus.update(line.sku for e in envelopes if isinstance(e.event, OrderCreated) for line in e.event.items)
    products = await repository.lock_products(connection, skus)
    return InventoryBatch(session, connection, held, products, order_ids=order_ids, skus=skus)
