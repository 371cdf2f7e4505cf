"""Loading, locking and saving products and reservations, each in one statement however many rows.
Nothing here commits: the caller owns the transaction (the worker's batch, or the API route's).

The statements are SQL texts run on the driver under the caller's session
(`shared.db.driver_connection`): building, cache-keying and executing a SQLAlchemy statement cost a
worker transaction more CPU than Postgres took to run it. Each text has one shape whatever the number
of rows (arrays as parameters, each cast so the driver knows its type), so asyncpg prepares it once
per connection. jsonb goes in as JSON text and comes out decoded.

Lock order, the same in every transaction, so two of them never wait on each other in a cycle:
first reservation rows in order id order, then products in SKU order; new reservations are
inserted last, in order id order (why that is safe: service_layer/unit_of_work.py).
"""

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from asyncpg import Record
from pydantic import TypeAdapter
from shared.db import DriverConnection
from shared.events import PricedLine, ReservationFailure

from inventory_service.domain import Product, Reservation, ReservationStatus

# -- products ---------------------------------------------------------------------------------------

_LOCK_PRODUCTS = """
    SELECT sku, name, unit_price, currency, available, reserved, sold, reorder_level
    FROM products WHERE sku = ANY($1::text[]) ORDER BY sku FOR UPDATE
"""

_ADD_PRODUCT = """
    INSERT INTO products (sku, name, unit_price, currency, available, reserved, sold, reorder_level)
    VALUES ($1::text, $2::text, $3::bigint, $4::text, $5::int, $6::int, $7::int, $8::int)
    ON CONFLICT (sku) DO NOTHING RETURNING sku
"""

_SAVE_PRODUCTS = """
    UPDATE products SET
        name = new.name, unit_price = new.unit_price, currency = new.currency, available = new.available,
        reserved = new.reserved, sold = new.sold, reorder_level = new.reorder_level, updated_at = now()
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::int[], $6::int[], $7::int[], $8::int[])
        AS new (sku, name, unit_price, currency, available, reserved, sold, reorder_level)
    WHERE products.sku = new.sku
"""


async def lock_products(connection: DriverConnection, skus: Iterable[str]) -> dict[str, Product]:
    """The known products among `skus`, locked in SKU order (unknown SKUs are simply absent)."""
    wanted = list(set(skus))
    if not wanted:
        return {}
    return {row["sku"]: Product(**row) for row in await connection.fetch(_LOCK_PRODUCTS, wanted)}


async def lock_product(connection: DriverConnection, sku: str) -> Product | None:
    return (await lock_products(connection, [sku])).get(sku)


async def add_product(connection: DriverConnection, product: Product) -> bool:
    """Insert a new product; False when a concurrent transaction created that SKU first."""
    return await connection.fetchval(_ADD_PRODUCT, *_product_row(product)) is not None


async def save_products(connection: DriverConnection, changed: Iterable[Product]) -> None:
    """Write the products' counters and catalog entries (rows the caller locked), one statement."""
    rows = [_product_row(product) for product in changed]
    if rows:
        await connection.execute(_SAVE_PRODUCTS, *_columns(rows))


def _product_row(product: Product) -> tuple[Any, ...]:
    """The product in the statements' column order (the domain's field order)."""
    return (
        product.sku,
        product.name,
        product.unit_price,
        product.currency,
        product.available,
        product.reserved,
        product.sold,
        product.reorder_level,
    )


# -- reservations -----------------------------------------------------------------------------------

_LOCK_RESERVATIONS = """
    SELECT order_id, lines, currency, status, failures
    FROM reservations WHERE order_id = ANY($1::uuid[]) ORDER BY order_id FOR UPDATE
"""

# Rows in the order given (WITH ORDINALITY), which is order id order: see insert_reservations.
_INSERT_RESERVATIONS = """
    INSERT INTO reservations (order_id, status, currency, total_amount, lines, failures)
    SELECT order_id, status, currency, total_amount, lines, failures
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::jsonb[], $6::jsonb[])
        WITH ORDINALITY AS new (order_id, status, currency, total_amount, lines, failures, n)
    ORDER BY n
"""

_SAVE_RESERVATIONS = """
    UPDATE reservations SET
        status = new.status, currency = new.currency, total_amount = new.total_amount,
        lines = new.lines, failures = new.failures, updated_at = now()
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::jsonb[], $6::jsonb[])
        AS new (order_id, status, currency, total_amount, lines, failures)
    WHERE reservations.order_id = new.order_id
"""

_LINES = TypeAdapter(tuple[PricedLine, ...])
_FAILURES = TypeAdapter(tuple[ReservationFailure, ...])


async def lock_reservations(connection: DriverConnection, order_ids: Iterable[UUID]) -> list[Reservation]:
    """The existing reservations of these orders, locked in order id order."""
    wanted = list(set(order_ids))
    if not wanted:
        return []
    return [_reservation(row) for row in await connection.fetch(_LOCK_RESERVATIONS, wanted)]


async def insert_reservations(connection: DriverConnection, new: Iterable[Reservation]) -> None:
    """Insert the reservations of orders that had none, in order id order. A plain INSERT: an order
    that got its row from a concurrent transaction meanwhile fails the statement (unique violation)."""
    rows = [_reservation_row(r) for r in sorted(new, key=lambda r: r.order_id)]
    if rows:
        await connection.execute(_INSERT_RESERVATIONS, *_columns(rows))


async def save_reservations(connection: DriverConnection, changed: Iterable[Reservation]) -> None:
    """Write the reservations' new state (rows the caller locked), one statement."""
    rows = [_reservation_row(reservation) for reservation in changed]
    if rows:
        await connection.execute(_SAVE_RESERVATIONS, *_columns(rows))


def _reservation_row(reservation: Reservation) -> tuple[Any, ...]:
    return (
        reservation.order_id,
        reservation.status.value,
        reservation.currency,
        reservation.total_amount if reservation.lines else None,  # null: nothing was priced
        _LINES.dump_json(reservation.lines).decode(),
        _FAILURES.dump_json(reservation.failures).decode(),
    )


def _reservation(row: Record) -> Reservation:
    return Reservation(
        order_id=row["order_id"],
        lines=_LINES.validate_python(row["lines"]),
        currency=row["currency"],
        status=ReservationStatus(row["status"]),
        failures=_FAILURES.validate_python(row["failures"]),
    )


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column: the array parameters of a statement of any size."""
    return [list(column) for column in zip(*rows, strict=True)]
