"""The gateway executor: runs in the payment worker process next to the event worker, and makes the
gateway calls the handlers decided (`service_layer/gateway_calls.py` has the steps and why they
are safe).

It wakes at once when a handler commits a new intent in this process (`wake`), and sweeps every
`executor_sweep_interval_s` for the rest: intents left by a crashed process, failed calls whose
backoff ran out, intents recorded by another worker process. Up to `executor_concurrency` calls
are in flight at once, each cut by `gateway_timeout_s`; a failed one is asked again later with the
same key, for as long as it takes: never dead-lettered, never given up.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime

from shared.events.base import utc_now
from shared.logging import get_logger
from shared.outage import is_database_outage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment_service.domain import PaymentGateway
from payment_service.service_layer import gateway_calls
from payment_service.settings import Settings

log = get_logger(__name__)


class GatewayExecutor:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        gateway: PaymentGateway,
        *,
        gateway_name: str | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._gateway = gateway
        # Only intents recorded for this gateway are ours: a key means something only to the
        # gateway that saw it.
        self.gateway_name = gateway_name or settings.gateway
        self._clock = clock
        self._wake = asyncio.Event()
        self._calls: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """A new intent is committed: look for due intents now rather than at the next sweep."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and call until `stop` is set; then let the calls in flight finish (each is cut by
        the gateway timeout), so no claim is left to run out its lease."""
        stopping = asyncio.create_task(stop.wait())
        log.info("gateway executor running", gateway=self.gateway_name)
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.start_due_calls()
                except Exception as exc:  # the next sweep tries again
                    if is_database_outage(exc):
                        log.warning("database unreachable; gateway intents wait", error=repr(exc))
                    else:
                        log.exception("could not claim due gateway intents")
                await self._sleep_until_woken(stopping)
        finally:
            stopping.cancel()
            if self._calls:
                await asyncio.wait(self._calls, timeout=self._settings.executor_lease_s)
            log.info("gateway executor stopped")

    async def start_due_calls(self) -> int:
        """Claim as many due intents as there is room for, and start their calls. How many."""
        room = self._settings.executor_concurrency - len(self._calls)
        if room <= 0:
            return 0
        claims = await gateway_calls.claim_due(
            self._sessions, self.gateway_name, self._settings, limit=room, clock=self._clock
        )
        for claim in claims:
            task = asyncio.create_task(self._execute(claim), name=f"gateway-call-{claim.order_id}")
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
        return len(claims)

    async def drain(self) -> None:
        """Wait for the calls in flight (tests: one round of work, to the end)."""
        while self._calls:
            await asyncio.wait(set(self._calls))

    async def _execute(self, claim: gateway_calls.Claim) -> None:
        try:
            await gateway_calls.execute(self._sessions, self._gateway, claim, self._settings, clock=self._clock)
        except Exception:  # recording failed (database away): the claim runs out, the call is made again
            log.exception("could not record a gateway call's outcome", order_id=str(claim.order_id))
        finally:
            self.wake()  # room for another call, and maybe a refund that just became due

    async def _sleep_until_woken(self, stopping: asyncio.Task[bool]) -> None:
        woken = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait(
                {woken, stopping}, timeout=self._settings.executor_sweep_interval_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            woken.cancel()
