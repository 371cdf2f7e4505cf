import base64
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from order_service.adapters.cursor import UnreadableCursor, decode_cursor, encode_cursor
from order_service.adapters.projection import Keyset
from order_service.service_layer import queries
from order_service.service_layer.errors import InvalidCursor


def test_a_cursor_decodes_to_the_position_it_encodes():
    position = Keyset(datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC), uuid4())
    assert decode_cursor(encode_cursor(position)) == position


def test_a_cursor_keeps_the_instant_of_a_non_utc_time():
    moment = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    assert decode_cursor(encode_cursor(Keyset(moment, uuid4()))).created_at == moment


def test_a_cursor_is_url_safe_text():
    cursor = encode_cursor(Keyset(datetime.now(UTC), uuid4()))
    assert cursor.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage!",
        "bm90IGpzb24",  # "not json"
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'["2025-01-01T00:00:00", "not-a-uuid"]').decode(),
        base64.urlsafe_b64encode(b'["2025-01-01T00:00:00", "00000000-0000-0000-0000-000000000001"]').decode(),
        base64.urlsafe_b64encode(b'["yesterday", "00000000-0000-0000-0000-000000000001"]').decode(),
        "é",
    ],
)
def test_anything_else_is_an_unreadable_cursor(cursor):
    with pytest.raises(UnreadableCursor):
        decode_cursor(cursor)


async def test_listing_after_an_unreadable_cursor_is_refused_as_an_invalid_cursor():
    with pytest.raises(InvalidCursor):
        await queries.list_orders(None, limit=20, cursor="garbage!")  # no session: refused before any I/O
