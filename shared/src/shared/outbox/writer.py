"""Adds events to the outbox inside the caller's transaction. Handlers never touch Kafka."""

from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events.base import Envelope
from shared.events.codec import encode

from .tables import outbox


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


async def add_to_outbox(session: AsyncSession, *envelopes: Envelope) -> None:
    if envelopes:
        await session.execute(insert(outbox), [outbox_row(envelope) for envelope in envelopes])
