"""Dead letters as the operator CLI reads them, and the rules of a redrive: what is sent back, with
which headers, which dead letters are chosen, and the limit that keeps a record from looping."""

from uuid import uuid4

import pytest
from ecommerce_ops.dead_letters import (
    REDRIVE_COUNT,
    REDRIVEN_FROM,
    DeadLetterRecord,
    plan_redrive,
    redrive_count,
    redriven_headers,
    select,
)
from ops_records import consumer_record, dead_lettered, record
from shared.events import Envelope, PaymentProcessed
from shared.events.codec import decode
from shared.events.samples import sample_event


class CheckViolationError(Exception):
    pass


def payment_processed() -> Envelope:
    event = sample_event(PaymentProcessed)
    return Envelope.new(event.model_copy(update={"order_id": uuid4()}))


def letter_of(envelope: Envelope, exc: BaseException | None = None, **kwargs) -> DeadLetterRecord:
    return DeadLetterRecord.of(dead_lettered(record(envelope), exc or CheckViolationError("orders_check"), **kwargs))


def test_a_dead_letter_is_read_with_its_event_its_order_its_cause_and_where_it_came_from() -> None:
    envelope = payment_processed()
    original = record(envelope, partition=5, offset=42)
    letter = DeadLetterRecord.of(dead_lettered(original, CheckViolationError("new row violates check"), offset=9))

    assert (letter.topic, letter.partition, letter.offset) == ("payment-events.DLT", 5, 9)
    assert letter.position == "payment-events.DLT:5:9"
    assert letter.event_id == str(envelope.event_id)
    assert letter.event_type == "PaymentProcessed"
    assert letter.order_id == str(envelope.event.order_id)
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == ("payment-events", 5, 42)
    assert letter.original_timestamp_ms == original.timestamp
    assert letter.consumer_group == "order-service"
    assert letter.cause_class.endswith("CheckViolationError")
    assert letter.cause == "CheckViolationError: new row violates check"
    assert "CheckViolationError" in letter.stacktrace
    assert letter.redrive_count == 0


def test_a_redriven_record_carries_the_events_own_headers_and_value_without_the_dead_letter_headers() -> None:
    envelope = payment_processed()
    original = record(envelope)
    letter = DeadLetterRecord.of(dead_lettered(original, CheckViolationError("boom"), offset=9))
    (redrive,) = plan_redrive([letter]).redrives

    assert (redrive.topic, redrive.partition) == ("payment-events", original.partition)
    assert (redrive.key, redrive.value) == (original.key, original.value)
    assert redrive.headers[: len(original.headers)] == original.headers
    assert not [name for name, _ in redrive.headers if name.startswith("kafka_dlt-")]
    assert dict(redrive.headers)[REDRIVE_COUNT] == b"1"
    assert dict(redrive.headers)[REDRIVEN_FROM] == b"payment-events.DLT:3:9"
    assert decode(redrive.value, redrive.headers) == envelope, "the consumers read the very same event again"


def test_a_record_dead_lettered_again_after_a_redrive_carries_its_count_and_the_next_redrive_counts_on() -> None:
    envelope = payment_processed()
    first = letter_of(envelope)
    (redrive,) = plan_redrive([first]).redrives
    resent = consumer_record(
        redrive.topic, redrive.partition, 100, 1_700_000_100_000, redrive.key, redrive.value, redrive.headers
    )
    second = DeadLetterRecord.of(dead_lettered(resent, CheckViolationError("again"), offset=10))

    assert second.redrive_count == 1
    headers = dict(redriven_headers(second))
    assert headers[REDRIVE_COUNT] == b"2"
    assert [name for name, _ in redriven_headers(second)].count(REDRIVE_COUNT) == 1


def test_a_record_already_redriven_max_redrives_times_is_refused_with_the_reason() -> None:
    letter = letter_of(payment_processed())
    at_limit = DeadLetterRecord.of(
        dead_lettered(record(payment_processed(), extra_headers=[(REDRIVE_COUNT, b"3")]), CheckViolationError("x"))
    )

    plan = plan_redrive([letter, at_limit], max_redrives=3)

    assert [redrive.letter for redrive in plan.redrives] == [letter]
    (refused,) = plan.refused
    assert refused.letter == at_limit
    assert "already redriven 3 times (limit 3)" in refused.reason
    assert plan_redrive([letter], max_redrives=0).refused[0].letter == letter


def test_of_several_dead_letters_of_one_event_only_the_latest_is_sent_and_the_others_are_reported_superseded() -> None:
    envelope = payment_processed()
    first = letter_of(envelope, offset=1, timestamp=1_000)
    (redrive,) = plan_redrive([first]).redrives
    resent = consumer_record(redrive.topic, redrive.partition, 100, 2_000, redrive.key, redrive.value, redrive.headers)
    second = DeadLetterRecord.of(dead_lettered(resent, CheckViolationError("again"), offset=2, timestamp=3_000))

    plan = plan_redrive([second, first])

    assert [redrive.letter for redrive in plan.redrives] == [second]
    assert plan.superseded == [first]


def test_a_redrive_count_header_that_is_not_a_count_is_refused_rather_than_guessed() -> None:
    letter = DeadLetterRecord.of(
        dead_lettered(record(payment_processed(), extra_headers=[(REDRIVE_COUNT, b"lots")]), CheckViolationError("x"))
    )
    assert letter.redrive_count is None
    assert "not a count" in plan_redrive([letter]).refused[0].reason
    assert redrive_count([(REDRIVE_COUNT, b"2"), (REDRIVE_COUNT, b"5")]) == 5, "the last header wins"


def test_dead_letters_are_selected_by_event_id_by_cause_or_all_and_never_without_a_choice() -> None:
    declined, broken = payment_processed(), payment_processed()
    by_check = letter_of(declined, CheckViolationError("orders_confirmed_check"))
    by_key = letter_of(broken, KeyError("payment row missing"))
    letters = [by_check, by_key]

    assert select(letters, event_ids=[str(declined.event_id).upper()]) == [by_check]
    assert select(letters, cause="checkviolation") == [by_check], "the class name, case-insensitive"
    assert select(letters, cause="row missing") == [by_key], "or the message"
    assert select(letters, event_ids=[str(declined.event_id)], cause="row missing") == [], "both must hold"
    assert select(letters, everything=True) == letters
    assert select(letters) == []


def test_an_unreadable_record_has_no_event_id_and_is_told_apart_by_its_original_position() -> None:
    garbage = consumer_record("order-events", 2, 11, 1_000, b"order-1", b"not json", [])
    letter = DeadLetterRecord.of(dead_lettered(garbage, ValueError("required header 'eventId' is missing")))

    assert letter.event_id is None
    assert letter.order_id == "order-1", "the key names the order"
    assert letter.identity == "order-events:2:11"
    (redrive,) = plan_redrive([letter]).redrives
    assert redrive.headers == [(REDRIVE_COUNT, b"1"), (REDRIVEN_FROM, letter.position.encode())]


@pytest.mark.parametrize(("seconds", "shown"), [(5, "5s"), (300, "5m"), (7200, "2h"), (3 * 86400, "3d")])
def test_ages_are_shown_in_the_largest_unit_that_keeps_them_readable(seconds: float, shown: str) -> None:
    from ecommerce_ops.render import age

    assert age(seconds) == shown
