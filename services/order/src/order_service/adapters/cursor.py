"""Opaque cursors for listing orders: the projection's keyset position where a page ends, as
base64url text, so a client can only hand back what the API gave it."""

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from .projection import Keyset


class UnreadableCursor(ValueError):
    """The text is not a cursor `encode_cursor` produced."""


def encode_cursor(position: Keyset) -> str:
    text = json.dumps([position.created_at.isoformat(), str(position.order_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Keyset:
    """Raises UnreadableCursor for anything `encode_cursor` did not produce."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, order_id = json.loads(base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True))
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return Keyset(moment, UUID(order_id))
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise UnreadableCursor(cursor) from None
