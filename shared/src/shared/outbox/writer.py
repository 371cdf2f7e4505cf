"""Adds events to the outbox inside the caller's transaction. Handlers never touch Kafka."""

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import driver_connection
from shared.events.base import Envelope
from shared.events.codec import encode


def outbox_row(envelope: Envelope) -> dict[str, Any]:
    """The envelope as the outbox stores it: serialized now, so the relay only copies bytes and a
    re-send is byte-identical."""
    record = encode(envelope)
    return {
        "event_id": envelope.event_id,
        "event_type": envelope.event_type,
        "topic": record.topic,
        "key": record.key.decode(),
        "value": record.value,
        "headers": {name: value.decode() for name, value in record.headers},
    }


# One statement of one shape for any number of rows, in the given order (ids, hence publishing order,
# follow it).
INSERT_ROWS = """
    INSERT INTO outbox (event_id, event_type, topic, key, value, headers)
    SELECT event_id, event_type, topic, key, value, headers
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::jsonb[])
        WITH ORDINALITY AS row (event_id, event_type, topic, key, value, headers, n)
    ORDER BY n
"""


def insert_arguments(rows: Sequence[dict[str, Any]]) -> tuple[list[Any], ...]:
    """INSERT_ROWS's six arrays, a column each, for these `outbox_row`s."""
    return (
        [row["event_id"] for row in rows],
        [row["event_type"] for row in rows],
        [row["topic"] for row in rows],
        [row["key"] for row in rows],
        [row["value"] for row in rows],
        [orjson.dumps(row["headers"]).decode() for row in rows],
    )


async def add_to_outbox(session: AsyncSession, *envelopes: Envelope) -> None:
    if not envelopes:
        return
    connection = await driver_connection(session)
    await connection.execute(INSERT_ROWS, *insert_arguments([outbox_row(envelope) for envelope in envelopes]))
