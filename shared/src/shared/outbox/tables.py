"""The two tables every service has in its own schema: the outbox and the processed-events log.

Tables are unqualified: each service's connections set `search_path` to its own schema, so the same
definitions serve all three services.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

machinery_metadata = MetaData()

outbox = Table(
    "outbox",
    machinery_metadata,
    # The relay publishes in id order; ids of one aggregate follow commit order because every
    # writer locks the aggregate before inserting.
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    Index("outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    Index("outbox_published_at", "published_at", postgresql_where=text("published_at IS NOT NULL")),
)

processed_events = Table(
    "processed_events",
    machinery_metadata,
    # One row per (consumer, event) handled: inserted in the handler's transaction, so a conflict
    # means the effect is already committed and the redelivered record is skipped.
    Column("consumer", Text, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer", "event_id"),
    Index("processed_events_processed_at", "processed_at"),
)


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel on which a service's outbox announces new rows."""
    return f"{schema}_outbox"
