"""Upcasting: a stored order event is read as the class the domain folds today, whatever schema
version it was stored under.

The event store keeps each event as the JSON of the public contract class (shared/events) that was
current when it was written, with its type and schema version. A breaking change to an order event
gets a new schema version (shared/events/registry.py) and the domain folds the new class only; the
rows stored under the old version are then read through an upcaster, a function from that
version's JSON to the next version's. Upcasters chain (v1 -> v2 -> v3), so each new version adds one
step and changes no earlier one, and an old version can be retired from the contract (its class
removed from shared/events) without making a stored history unloadable. Within one version no
upcaster is needed: a version's schema only ever grows by optional fields (shared/events/
compatibility.py), and its class ignores unknown ones.

To add a version: register `(event type, old version) -> function` in UPCASTERS below, next to the
new class; tests/unit/order/test_upcasting.py fails while an older version the contract still lists
has no path to the one the domain folds.
"""

from collections.abc import Callable, Mapping
from typing import Any

from order_service.domain import ORDER_EVENT_CLASSES, CorruptHistory, OrderEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (event type, stored schema version) -> the data of that type's next version. None yet: every order
# event is still at its first version.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}

# The class the domain folds for each order event type (the newest version).
FOLDED: dict[str, type[OrderEvent]] = {cls.event_type: cls for cls in ORDER_EVENT_CLASSES}


def current_event(
    event_type: str,
    schema_version: int,
    data: dict[str, Any],
    *,
    upcasters: Mapping[tuple[str, int], Upcaster] = UPCASTERS,
    folded: Mapping[str, type[OrderEvent]] = FOLDED,
) -> OrderEvent:
    """The stored event as the class the domain folds: its data upcast one version at a time, then
    validated. Raises CorruptHistory naming the type and version when no chain of upcasters reaches
    that class, or pydantic's ValidationError when the data does not fit it."""
    cls = folded.get(event_type)
    if cls is None:
        raise CorruptHistory(f"{event_type} is not an order event this code folds")
    stored = f"{event_type} stored as schema version {schema_version}"
    if schema_version > cls.schema_version:
        raise CorruptHistory(f"{stored} is newer than version {cls.schema_version}, the newest this code folds")
    version = schema_version
    while version < cls.schema_version:
        upcast = upcasters.get((event_type, version))
        if upcast is None:
            raise CorruptHistory(
                f"{stored} cannot be read as version {cls.schema_version}: no upcaster from version {version}"
            )
        data, version = upcast(data), version + 1
    return cls.model_validate(data)
