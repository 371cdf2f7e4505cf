"""Consumer runtime: idempotent handling, retries with backoff, dead letters, graceful shutdown."""

from .worker import EventWorker, Handler

__all__ = ["EventWorker", "Handler"]
