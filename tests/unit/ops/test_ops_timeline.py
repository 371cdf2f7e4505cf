"""An order's saga as the CLI (and the demo) print it: every record in time order, offsets from the
first, who wrote it, a one-line description, dead letters and redriven records told apart."""

from datetime import timedelta
from uuid import uuid4

from ecommerce_ops.dead_letters import REDRIVE_COUNT
from ecommerce_ops.timeline import describe, entry_of, format_state, format_timeline, timeline
from ops_records import dead_lettered, record
from shared.events import Envelope, OrderConfirmed, OrderCreated, PaymentProcessed, StockReserved
from shared.events.samples import sample_event


def saga_of(order_id):
    """OrderCreated, StockReserved, PaymentProcessed, OrderConfirmed, 100 ms apart, each caused by the one before."""
    envelopes = []
    for index, cls in enumerate((OrderCreated, StockReserved, PaymentProcessed, OrderConfirmed)):
        event = sample_event(cls).model_copy(update={"order_id": order_id})
        envelope = Envelope.new(event, caused_by=envelopes[-1] if envelopes else None)
        start = envelopes[0].occurred_at if envelopes else envelope.occurred_at
        envelopes.append(envelope.model_copy(update={"occurred_at": start + timedelta(milliseconds=100 * index)}))
    return envelopes


def test_the_timeline_is_in_the_order_the_events_occurred_whatever_the_topic_they_were_read_from() -> None:
    envelopes = saga_of(uuid4())
    records = [record(envelope, offset=index) for index, envelope in reversed(list(enumerate(envelopes)))]

    entries = timeline(records)

    assert [entry.event_type for entry in entries] == [
        "OrderCreated",
        "StockReserved",
        "PaymentProcessed",
        "OrderConfirmed",
    ]
    assert [entry.source for entry in entries] == ["order", "inventory", "payment", "order"]


def test_each_line_shows_the_offset_from_the_first_event_the_writer_the_type_and_what_happened() -> None:
    lines = format_timeline(timeline(record(envelope) for envelope in saga_of(uuid4())))

    assert lines[0] == "+      0 ms  order         OrderCreated             2x MUG-BLUE, 1x TEE-L"
    assert lines[1] == "+    100 ms  inventory     StockReserved            total 44.99 EUR"
    assert lines[3].startswith("+    300 ms  order         OrderConfirmed")


def test_a_dead_letters_line_shows_only_the_first_line_of_a_long_cause() -> None:
    (_, _, processed, _) = saga_of(uuid4())
    cause = RuntimeError('new row violates check constraint "x"\nDETAIL:  Failing row contains (' + "y" * 500 + ")")

    entry = entry_of(dead_lettered(record(processed, offset=41), cause))

    assert (
        entry.description
        == 'DEAD-LETTERED after payment-events@41: RuntimeError: new row violates check constraint "x"'
    )


def test_a_dead_letter_shows_who_gave_up_on_which_record_and_why() -> None:
    (_, _, processed, _) = saga_of(uuid4())
    original = record(processed, offset=41)

    entry = entry_of(dead_lettered(original, RuntimeError("new row violates check constraint")))

    assert entry.kind == "dead-letter"
    assert (entry.source, entry.event_type) == ("order-service", "PaymentProcessed")
    assert entry.description == "DEAD-LETTERED after payment-events@41: RuntimeError: new row violates check constraint"
    assert entry.correlation_id == str(processed.event.order_id)


def test_a_redriven_record_is_marked_with_its_redrive_count_and_placed_when_it_was_sent_back() -> None:
    (_, _, processed, _) = saga_of(uuid4())
    sent_back_ms = int((processed.occurred_at + timedelta(minutes=3)).timestamp() * 1000)

    entry = entry_of(record(processed, timestamp=sent_back_ms, extra_headers=[(REDRIVE_COUNT, b"2")]))

    assert entry.kind == "redriven"
    assert entry.description.endswith("(redriven, 2x)")
    assert abs(entry.at - (processed.occurred_at + timedelta(minutes=3))) < timedelta(milliseconds=1), (
        "not at the event's own time"
    )


def test_an_unreadable_record_is_shown_as_such_instead_of_failing_the_timeline() -> None:
    from ops_records import consumer_record

    entry = entry_of(consumer_record("order-events", 0, 1, 1_000, b"k", b"{}", [("eventType", b"OrderCreated")]))

    assert entry.event_type == "(unreadable)"
    assert "eventId" in entry.description


def test_an_order_created_is_described_by_its_lines_and_never_by_its_payment_token() -> None:
    event = sample_event(OrderCreated)

    assert describe(event) == "2x MUG-BLUE, 1x TEE-L"
    assert event.payment_token not in describe(event)


def test_the_state_line_shows_the_order_the_payment_and_the_stock() -> None:
    order = {"status": "CANCELLED", "total_amount": 8999, "currency": "EUR", "cancellation_reason": "saga_timeout"}

    assert format_state(order, {"status": "VOIDED"}, {"status": "RELEASED"}) == (
        "order: CANCELLED total 89.99 EUR, saga_timeout   payment: VOIDED   stock: RELEASED"
    )
    assert format_state(None, None, None) == "order: -   payment: -   stock: -"
