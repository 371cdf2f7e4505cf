import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from order_service.entrypoints.schemas import PlaceOrderIn, parse_as_of, redacted
from order_service.service_layer.commands import Line
from pydantic import ValidationError

GOOD = {"customer_id": "c-1", "items": [{"sku": "SKU-1", "quantity": 2}], "payment_token": "tok_visa"}


def test_a_request_becomes_a_place_order_command_of_the_caller_with_its_idempotency_key():
    command = PlaceOrderIn.model_validate(GOOD).to_command("c-1", "key-1")

    assert command.items == (Line("SKU-1", 2),)
    assert (command.customer_id, command.payment_token, command.idempotency_key) == ("c-1", "tok_visa", "key-1")


def test_the_customer_id_may_be_left_out_of_the_body():
    body = {key: value for key, value in GOOD.items() if key != "customer_id"}

    assert PlaceOrderIn.model_validate(body).customer_id is None


@pytest.mark.parametrize(
    "body",
    [
        {**GOOD, "coupon": "FREE"},
        {**GOOD, "items": [{"sku": "SKU-1", "quantity": 1, "unit_price": 1}]},
        {**GOOD, "items": [{"sku": "SKU-1", "quantity": "2"}]},
        {**GOOD, "items": [{"sku": "SKU-1", "quantity": 2.5}]},
        {**GOOD, "items": [{"sku": "SKU-1", "quantity": True}]},
    ],
)
def test_unknown_fields_and_non_integer_quantities_are_refused(body):
    with pytest.raises(ValidationError):
        PlaceOrderIn.model_validate_json(json.dumps(body))


def test_a_quantity_written_as_a_whole_float_is_that_integer_as_json_schema_says():
    body = {**GOOD, "items": [{"sku": "SKU-1", "quantity": 2.0}]}

    assert PlaceOrderIn.model_validate_json(json.dumps(body)).items[0].quantity == 2


def test_a_sku_on_several_lines_becomes_one_line_of_the_summed_quantity_in_first_seen_order():
    lines = [{"sku": "B", "quantity": 1}, {"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 3}]

    command = PlaceOrderIn.model_validate({**GOOD, "items": lines}).to_command("c-1", None)

    assert command.items == (Line("B", 4), Line("A", 2))


def test_as_of_accepts_z_and_offsets_as_the_same_instant():
    assert parse_as_of("2025-01-01T12:00:00Z") == datetime(2025, 1, 1, 12, tzinfo=UTC)
    moment = parse_as_of("2025-01-01T13:00:00+01:00")
    assert moment == datetime(2025, 1, 1, 12, tzinfo=UTC) and moment.utcoffset() == timedelta(hours=1)
    assert parse_as_of("2025-01-01T12:00:00.5-05:00").tzinfo == timezone(timedelta(hours=-5))


def test_as_of_without_an_offset_is_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_as_of("2025-01-01T12:00:00")


def test_as_of_whose_plus_became_a_space_in_the_url_gets_a_hint():
    with pytest.raises(ValueError, match="%2B"):
        parse_as_of("2025-01-01T12:00:00 01:00")


def test_the_audit_trail_hides_the_payment_token_and_nothing_else():
    data = {"order_id": "x", "payment_token": "tok_visa", "items": []}
    assert redacted(data) == {"order_id": "x", "payment_token": "[redacted]", "items": []}
