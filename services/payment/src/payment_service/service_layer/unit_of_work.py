"""The worker's unit of work: the payments one transaction's events touch, created if missing and
locked up front (`open_batch`, two statements), changed in memory by the handlers through the
domain's rules, and the changed ones written back at `flush` in one statement, however many events
the batch holds.

The handlers of one batch share this state, so the next event of the same order sees what the
earlier ones changed. A batch that fails is simply dropped with its transaction (the worker then
redoes its events one at a time), so a failed batch's in-memory state is never written.
"""

from collections.abc import Callable, Sequence

from shared.consumer import SessionBatch
from shared.db import DriverConnection, driver_connection
from shared.events import Envelope
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service.adapters import repository
from payment_service.adapters.repository import LockedPayments

Wake = Callable[[], None]


class PaymentBatch(SessionBatch):
    """The payments of the batch's orders, locked, and the changed ones written back at `flush`."""

    def __init__(self, session: AsyncSession, connection: DriverConnection, payments: LockedPayments) -> None:
        super().__init__(session)
        self.connection = connection  # the session's own, in its transaction
        self.payments = payments
        self._waking: set[Wake] = set()

    def wake_on_commit(self, wake: Wake) -> None:
        """Call `wake` once the batch committed; once, however many intents the batch recorded."""
        if wake not in self._waking:
            self._waking.add(wake)
            self.on_commit(wake)

    async def flush(self) -> None:
        await repository.save_payments(self.connection, self.payments.changed())
        await super().flush()


async def open_batch(session: AsyncSession, envelopes: Sequence[Envelope]) -> PaymentBatch:
    """Every payment the events touch, created if missing, locked in ascending order id."""
    order_ids = {order_id for envelope in envelopes if (order_id := getattr(envelope.event, "order_id", None))}
    connection = await driver_connection(session)
    await repository.create_missing_payments(connection, order_ids)
    return PaymentBatch(session, connection, await repository.lock_payments(connection, order_ids))
