"""Stored order events are read as the classes the domain folds today: an older schema version goes
through the upcasters one version at a time; a version no upcaster reaches is refused by name."""

from typing import ClassVar
from uuid import uuid4

import pytest
from order_service.adapters import upcasting
from order_service.adapters.upcasting import current_event
from order_service.domain import ORDER_EVENT_CLASSES, CorruptHistory
from shared.events import OrderConfirmed
from shared.events.base import Event
from shared.events.registry import supported_versions

ORDER_ID = uuid4()


class Parcel(Event):
    """An event whose current schema is version 3, to follow a chain of two upcasters."""

    event_type: ClassVar[str] = "Parcel"
    schema_version: ClassVar[int] = 3
    topic: ClassVar[str] = "parcels"
    weight_grams: int
    label: str


PARCEL_STEPS = {
    ("Parcel", 1): lambda data: {"weight_kg": data["kg"], "label": data.get("label", "")},  # v1 -> v2
    ("Parcel", 2): lambda data: {"weight_grams": data["weight_kg"] * 1000, "label": data["label"]},  # v2 -> v3
}


def test_a_stored_event_of_the_version_the_domain_folds_is_read_as_it_was_stored():
    confirmed = OrderConfirmed(order_id=ORDER_ID, payment_id=uuid4(), amount=2000, currency="EUR")

    assert current_event("OrderConfirmed", 1, confirmed.model_dump(mode="json")) == confirmed


def test_an_older_version_is_upcast_one_version_at_a_time_up_to_the_current_class():
    event = current_event("Parcel", 1, {"kg": 2}, upcasters=PARCEL_STEPS, folded={"Parcel": Parcel})

    assert event == Parcel(weight_grams=2000, label="")


def test_a_chain_that_breaks_before_the_current_version_is_refused_naming_where_it_stops():
    first_step_only = {("Parcel", 1): PARCEL_STEPS["Parcel", 1]}

    with pytest.raises(CorruptHistory, match=r"Parcel stored as schema version 1 .* no upcaster from version 2"):
        current_event("Parcel", 1, {"kg": 2}, upcasters=first_step_only, folded={"Parcel": Parcel})


def test_a_stored_version_with_no_upcaster_is_refused_naming_its_type_and_version():
    with pytest.raises(CorruptHistory, match=r"OrderCreated stored as schema version 0 .* no upcaster from version 0"):
        current_event("OrderCreated", 0, {"order_id": str(ORDER_ID)})


def test_a_version_newer_than_the_domain_folds_is_refused_naming_it():
    with pytest.raises(CorruptHistory, match=r"OrderCreated stored as schema version 2 is newer than version 1"):
        current_event("OrderCreated", 2, {"order_id": str(ORDER_ID)})


def test_an_event_the_order_does_not_fold_is_refused():
    with pytest.raises(CorruptHistory, match="StockReserved is not an order event"):
        current_event("StockReserved", 1, {"order_id": str(ORDER_ID)})


@pytest.mark.parametrize("cls", ORDER_EVENT_CLASSES, ids=lambda cls: cls.event_type)
def test_every_older_version_the_contract_still_lists_has_upcasters_to_the_one_the_domain_folds(cls):
    # A new schema version of an order event must come with the upcaster from the one before it,
    # or every history stored under the old version stops loading.
    older = [version for version in supported_versions(cls.event_type) if version < cls.schema_version]
    missing = [
        (cls.event_type, step)
        for version in older
        for step in range(version, cls.schema_version)
        if (cls.event_type, step) not in upcasting.UPCASTERS
    ]
    assert not missing
