"""Transactional outbox: events are rows written with the state change, published by the relay."""

from .tables import machinery_metadata, outbox, processed_events
from .writer import add_to_outbox

__all__ = ["add_to_outbox", "machinery_metadata", "outbox", "processed_events"]
