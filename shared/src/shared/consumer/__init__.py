"""Consumer runtime: idempotent handling, retries with backoff, dead letters, graceful shutdown.

The names below are imported on first use (PEP 562), so that a program that needs only a part
without the worker's runtime (the operator CLI reads the dead-letter format of `.dead_letter`) does
not load SQLAlchemy and the rest: about two seconds of CPU at every start."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .transaction import Batch, Consumption, SessionBatch, payload
    from .worker import EventWorker, Handler

__all__ = ["Batch", "Consumption", "EventWorker", "Handler", "SessionBatch", "payload"]

_MODULE_OF = {
    "Batch": ".transaction",
    "Consumption": ".transaction",
    "SessionBatch": ".transaction",
    "payload": ".transaction",
    "EventWorker": ".worker",
    "Handler": ".worker",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_MODULE_OF[name], __name__), name)
