"""The inventory's tables. Unqualified: connections set `search_path` to the service's schema.

The initial migration creates the same tables; this metadata is what the code reads and writes.
"""

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("sku", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("unit_price", BigInteger, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("available", Integer, nullable=False),
    Column("reserved", Integer, nullable=False, server_default="0"),
    Column("sold", Integer, nullable=False, server_default="0"),
    Column("reorder_level", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The domain refuses negative stock already; the database refuses it too, so no bug can write it.
    CheckConstraint("available >= 0", name="products_available_not_negative"),
    CheckConstraint("reserved >= 0", name="products_reserved_not_negative"),
    CheckConstraint("sold >= 0", name="products_sold_not_negative"),
    CheckConstraint("unit_price >= 0", name="products_unit_price_not_negative"),
    CheckConstraint("reorder_level >= 0", name="products_reorder_level_not_negative"),
)

reservations = Table(
    "reservations",
    metadata,
    # One row per order inventory answered, FAILED ones included: a repeated or late message about
    # the order finds it and does nothing twice.
    Column("order_id", Uuid, primary_key=True),
    Column("status", Text, nullable=False),
    Column("currency", CHAR(3)),  # null when FAILED: nothing was priced
    Column("total_amount", BigInteger),  # null when FAILED
    Column("lines", JSONB, nullable=False),  # [{sku, quantity, unit_price}]
    Column("failures", JSONB, nullable=False),  # [{sku, requested, available, reason}]
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('RESERVED', 'SOLD', 'RELEASED', 'FAILED')", name="reservations_status_known"),
)
