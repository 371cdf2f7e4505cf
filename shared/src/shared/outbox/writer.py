"""Adds events to the outbox inside the caller's transaction. Handlers never touch Kafka."""

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events.base import Envelope
from shared.events.codec import encode

from .tables import outbox


async def add_to_outbox(session: AsyncSession, *envelopes: Envelope) -> None:
    """Serialize now, so the relay only copies bytes and a re-send is byte-identical."""
    if not envelopes:
        return
    rows = []
    for envelope in envelopes:
        record = encode(envelope)
        rows.append(
            {
                "event_id": envelope.event_id,
                "event_type": envelope.event_type,
                "topic": record.topic,
                "key": record.key.decode(),
                "value": record.value,
                "headers": {name: value.decode() for name, value in record.headers},
            }
        )
    await session.execute(insert(outbox), rows)
