from typing import Literal, Optional

from pydantic import BaseModel, Field
from shared.events.compatibility import BreakingChange, breaking_changes, is_backward_compatible


def schema(model: type[BaseModel]) -> dict:
    return model.model_json_schema()


def messages(old: type[BaseModel] | dict, new: type[BaseModel] | dict) -> list[str]:
    old_schema = old if isinstance(old, dict) else schema(old)
    new_schema = new if isinstance(new, dict) else schema(new)
    return [str(change) for change in breaking_changes(old_schema, new_schema)]


class Line(BaseModel):
    sku: str
    quantity: int


class Placed(BaseModel):
    order_id: str
    items: list[Line]
    status: Literal["PENDING", "PAID"]
    note: str | None = None


def test_an_unchanged_schema_is_compatible() -> None:
    assert is_backward_compatible(schema(Placed), schema(Placed))


def test_adding_an_optional_field_is_compatible() -> None:
    class WithGift(Placed):
        gift_wrap: bool = False

    assert messages(Placed, WithGift) == []


def test_removing_a_field_is_breaking() -> None:
    class WithoutNote(BaseModel):
        order_id: str
        items: list[Line]
        status: Literal["PENDING", "PAID"]

    assert messages(Placed, WithoutNote) == ["$.note: field removed or renamed"]


def test_renaming_a_field_is_breaking_and_names_the_new_field() -> None:
    class Renamed(BaseModel):
        order_id: str
        lines: list[Line]
        status: Literal["PENDING", "PAID"]
        note: str | None = None

    assert messages(Placed, Renamed) == [
        "$.items: field removed or renamed (new fields: lines)",
        "$.lines: new required field",
    ]


def test_changing_a_field_type_is_breaking() -> None:
    class NumericId(Placed):
        order_id: int

    assert messages(Placed, NumericId) == ["$.order_id: type changed from string to integer"]


def test_changing_a_type_inside_a_nested_definition_is_breaking() -> None:
    class TextQuantityLine(BaseModel):
        sku: str
        quantity: str

    class Changed(Placed):
        items: list[TextQuantityLine]

    assert messages(Placed, Changed) == ["$.items[].quantity: type changed from integer to string"]


def test_renaming_a_nested_definition_without_changing_its_shape_is_compatible() -> None:
    class OrderLine(BaseModel):
        sku: str
        quantity: int

    class Renamed(Placed):
        items: list[OrderLine]

    assert messages(Placed, Renamed) == []


def test_making_an_optional_field_required_is_breaking() -> None:
    class NoteRequired(Placed):
        note: str | None

    assert messages(Placed, NoteRequired) == ["$.note: optional field made required"]


def test_adding_a_required_field_is_breaking() -> None:
    class WithCustomer(Placed):
        customer_id: str

    assert messages(Placed, WithCustomer) == ["$.customer_id: new required field"]


def test_adding_a_required_field_to_a_nested_model_is_breaking() -> None:
    class PricedLine(Line):
        unit_price: int

    class Priced(Placed):
        items: list[PricedLine]

    assert messages(Placed, Priced) == ["$.items[].unit_price: new required field"]


def test_removing_an_enum_value_is_breaking() -> None:
    class OnlyPending(Placed):
        status: Literal["PENDING"]

    assert messages(Placed, OnlyPending) == ["$.status: enum value(s) removed: ['PAID']"]


def test_adding_an_enum_value_is_compatible() -> None:
    class WithShipped(Placed):
        status: Literal["PENDING", "PAID", "SHIPPED"]

    assert messages(Placed, WithShipped) == []


def test_restricting_a_free_field_to_enum_values_is_breaking() -> None:
    class Free(BaseModel):
        reason: str

    class Restricted(BaseModel):
        reason: Literal["customer_request"]

    assert messages(Free, Restricted) == ["$.reason: now restricted to the values ['customer_request']"]


def test_accepting_null_as_well_is_compatible_but_refusing_it_again_is_breaking() -> None:
    class Plain(BaseModel):
        note: str

    class Nullable(BaseModel):
        note: Optional[str]  # noqa: UP045 - the spelling does not matter, the schema is the same

    assert messages(Plain, Nullable) == []
    assert messages(Nullable, Plain) == ["$.note: type changed: null is no longer accepted"]


def test_tightening_a_limit_is_breaking_and_loosening_it_is_compatible() -> None:
    class Short(BaseModel):
        sku: str = Field(max_length=64)
        quantity: int = Field(ge=1)

    class Shorter(BaseModel):
        sku: str = Field(max_length=32)
        quantity: int = Field(ge=2)

    class Unlimited(BaseModel):
        sku: str
        quantity: int = Field(ge=0)

    assert messages(Short, Shorter) == [
        "$.sku: maxLength tightened from 64 to 32",
        "$.quantity: minimum tightened from 1 to 2",
    ]
    assert messages(Short, Unlimited) == []


def test_changing_a_pattern_is_breaking() -> None:
    class Upper(BaseModel):
        currency: str = Field(pattern="^[A-Z]{3}$")

    class Lower(BaseModel):
        currency: str = Field(pattern="^[a-z]{3}$")

    assert messages(Upper, Lower) == ["$.currency: pattern changed from '^[A-Z]{3}$' to '^[a-z]{3}$'"]


def test_adding_a_format_is_breaking() -> None:
    old = {"type": "object", "properties": {"order_id": {"type": "string"}}}
    new = {"type": "object", "properties": {"order_id": {"type": "string", "format": "uuid"}}}

    assert messages(old, new) == ["$.order_id: format changed from None to 'uuid'"]
    assert messages(new, old) == []


def test_changing_only_titles_and_descriptions_is_compatible() -> None:
    old = {"type": "object", "title": "A", "properties": {"a": {"type": "string", "title": "A"}}}
    new = {"type": "object", "title": "B", "description": "why", "properties": {"a": {"type": "string"}}}

    assert messages(old, new) == []


def test_moving_an_event_to_another_topic_or_key_is_breaking() -> None:
    old = {**schema(Placed), "x-topic": "order-events", "x-key": "order_id"}
    new = {**schema(Placed), "x-topic": "orders", "x-key": "order_id"}

    assert messages(old, new) == ["$: x-topic changed from 'order-events' to 'orders'"]


def test_a_recursive_definition_is_compared_without_looping() -> None:
    class Category(BaseModel):
        name: str
        children: list["Category"] = []

    assert messages(Category, Category) == []


def test_a_breaking_change_reads_as_path_and_reason() -> None:
    assert str(BreakingChange("$.items[].sku", "field removed or renamed")) == (
        "$.items[].sku: field removed or renamed"
    )
