"""Consumer runtime: idempotent handling, retries with backoff, dead letters, graceful shutdown."""

from .transaction import Batch, Consumption, SessionBatch, payload
from .worker import EventWorker, Handler

__all__ = ["Batch", "Consumption", "EventWorker", "Handler", "SessionBatch", "payload"]
