"""The rebuild's pure parts: reading the topic's events back into histories and comparing."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from order_service.adapters.projection import project
from order_service.adapters.repository import envelope_for
from order_service.domain import Order, OrderItem, OrderStatus
from order_service.entrypoints.rebuild import parse_args
from order_service.service_layer.rebuild import (
    EVENTS_MISSING_ON_TOPIC,
    NO_EVENTS_ON_TOPIC,
    TOPIC_ONLY,
    Report,
    TopicHistories,
    compare,
    compare_with_topic,
)
from shared.events import Envelope, LowStockAlert, PricedLine, StockReserved
from shared.events.codec import encode

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def priced_order() -> Order:
    order = Order.place(uuid4(), "customer-1", [OrderItem("SKU-1", 2)], "tok_visa", T0)
    reserved = StockReserved(
        order_id=order.order_id,
        items=(PricedLine(sku="SKU-1", quantity=2, unit_price=1000),),
        total_amount=2000,
        currency="EUR",
    )
    order.on_stock_reserved(reserved, T0 + timedelta(seconds=1))
    return order


def published(order: Order) -> list[Envelope]:
    """The order's events as the relay put them on the topic."""
    return [envelope_for(recorded, None) for recorded in order.pending_events]


def read_back(*envelopes: Envelope) -> TopicHistories:
    histories = TopicHistories()
    for envelope in envelopes:
        record = encode(envelope)
        histories.add_record(record.value, record.headers)
    return histories


def test_events_read_back_from_the_topic_fold_to_the_live_projection():
    order = priced_order()

    histories = read_back(*published(order))

    assert project(Order.from_history(histories.histories[order.order_id])) == project(order)


def test_a_re_sent_event_is_counted_once():
    order = priced_order()
    first, second = published(order)

    histories = read_back(first, second, first, second)

    assert [recorded.version for recorded in histories.histories[order.order_id]] == [1, 2]
    assert histories.duplicates == 2


def test_other_events_and_unreadable_records_are_counted_not_folded():
    histories = read_back(Envelope.new(LowStockAlert(sku="SKU-1", available=1, reorder_level=5)))
    histories.add_record(b"not json", [("eventId", str(uuid4()).encode())])

    assert histories.histories == {}
    assert (histories.records, histories.other_events, histories.unreadable) == (2, 1, 1)


def test_an_order_whose_events_are_all_on_the_topic_is_compared():
    order = priced_order()

    report = compare_with_topic(read_back(*published(order)), {order.order_id: project(order)})

    assert (report.compared, report.equal, report.ok) == (1, 1, True)
    assert not report.not_comparable


def test_an_order_with_fewer_events_on_the_topic_than_its_version_is_not_comparable():
    order = priced_order()
    created, _ = published(order)

    report = compare_with_topic(read_back(created), {order.order_id: project(order)})

    assert report.ok and report.compared == 0
    assert report.not_comparable == {EVENTS_MISSING_ON_TOPIC: 1}


def test_orders_absent_from_the_topic_or_from_the_projection_are_not_comparable():
    on_topic_only, in_projection_only = priced_order(), priced_order()

    report = compare_with_topic(
        read_back(*published(on_topic_only)), {in_projection_only.order_id: project(in_projection_only)}
    )

    assert report.ok and report.compared == 0
    assert report.not_comparable == {TOPIC_ONLY: 1, NO_EVENTS_ON_TOPIC: 1}


def test_a_projection_behind_the_topic_is_a_difference():
    order = priced_order()
    live = project(Order.from_history(order.pending_events[:1]))

    report = compare_with_topic(read_back(*published(order)), {order.order_id: live})

    assert not report.ok
    (difference,) = report.differences
    assert difference.order_id == order.order_id
    assert ("version", 1, 2) in difference.fields


def test_a_history_on_the_topic_that_does_not_start_with_the_creation_is_a_difference():
    order = priced_order()
    _, updated = published(order)
    live = project(Order.from_history(order.pending_events[:1]))

    report = compare_with_topic(read_back(updated), {order.order_id: live})

    assert not report.ok
    assert "cannot be folded" in report.differences[0].problem


def test_comparing_with_the_store_reports_missing_extra_and_drifted_rows():
    same, drifted, missing, extra = (project(priced_order()) for _ in range(4))
    rebuilt = {row.order_id: row for row in (same, drifted, missing)}
    live = {row.order_id: row for row in (same, replace(drifted, status=OrderStatus.CANCELLED), extra)}
    report = Report(source="event store")

    compare(report, rebuilt, live)

    assert (report.compared, report.equal) == (4, 1)
    problems = {d.order_id: d.problem for d in report.differences}
    assert problems == {
        drifted.order_id: "differs",
        missing.order_id: "missing from the projection",
        extra.order_id: "in the projection but has no events",
    }


def test_the_report_says_equal_or_different_and_names_the_first_differences():
    report = Report(source="event store", compared=3, equal=3)
    assert "3 orders compared, 3 equal, 0 differing" in report.render()
    assert report.render().endswith("EQUALS the rebuilt one.")

    order_id = UUID(int=7)
    compare(report, {}, {order_id: project(priced_order())})
    text = report.render()
    assert "1 differing" in text and str(order_id) in text and "DIFFERS FROM" in text


def test_the_rebuild_command_applies_only_from_the_store(capsys):
    assert parse_args(["--from", "store", "--apply"]).apply
    assert parse_args(["--from", "topic"]).source == "topic"
    with pytest.raises(SystemExit) as refused:
        parse_args(["--from", "topic", "--apply"])
    assert refused.value.code == 2
    assert "--apply needs --from store" in capsys.readouterr().err
