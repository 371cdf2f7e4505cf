"""The gateway executor: runs in the payment worker process next to the event worker, and makes the
gateway calls the handlers decided (`service_layer/gateway_calls.py` has the steps and why they
are safe).

It wakes at once when a worker batch commits a new intent in this process (`wake`), and sweeps
every `executor_sweep_interval_s` for the rest: intents left by a crashed process, failed calls
whose backoff ran out, intents recorded by another worker process. Each wake claims as many due
intents as there is room for in one transaction; up to `executor_concurrency` calls are in flight
at once, each cut by `gateway_timeout_s`; a failed one is asked again later with the same key, for
as long as it takes: never dead-lettered, never given up.

Outcomes are recorded in groups, one transaction at a time: the outcomes that arrive while a
recording transaction runs wait for it and go together in the next one. So one transaction records
one outcome when calls are few, and many when they are many. A call counts against the concurrency
until its outcome is committed.
"""

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from opentelemetry.trace import SpanKind
from shared.events.base import utc_now
from shared.logging import get_logger
from shared.outage import is_database_outage
from shared.sealing import Opener
from shared.tracing import continued, current_traceparent
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payment_service.domain import ChargeCall, PaymentGateway
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
        opener: Opener | None = None,
        clock: Callable[[], datetime] = utc_now,
        woken: asyncio.Event | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._gateway = gateway
        # Opens each charge's payment token right before the call: this service's private key.
        self._opener = opener or Opener.from_file(settings.payment_token_private_key_file)
        # Only intents recorded for this gateway are ours: a key means something only to the
        # gateway that saw it.
        self.gateway_name = gateway_name or settings.gateway
        self._clock = clock
        # Set by `wake`, or by whoever holds the event (the handlers, once their batch commits).
        self._wake = woken or asyncio.Event()
        self._calls: set[asyncio.Task[None]] = set()
        # Outcomes waiting for the next recording transaction, each with what its call waits on.
        self._unrecorded: list[tuple[gateway_calls.Outcome, asyncio.Future[None]]] = []
        self._recording: asyncio.Task[None] | None = None

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
        kind = "charge" if isinstance(claim.call, ChargeCall) else "refund"
        # The call in the trace of the event that decided it; its answer's events are its children.
        with continued(claim.traceparent, f"{kind} {self.gateway_name}", SpanKind.CLIENT):
            claim = replace(claim, traceparent=current_traceparent() or claim.traceparent)
            try:
                outcome = await gateway_calls.call_gateway(self._gateway, claim, self._settings, self._opener)
                await self._record(outcome)
            except Exception:  # recording failed (database away): the claim runs out, the call is made again
                log.exception("could not record a gateway call's outcome", order_id=str(claim.order_id))
            finally:
                self.wake()  # room for another call, and maybe a refund that just became due

    async def _record(self, outcome: gateway_calls.Outcome) -> None:
        """Until the outcome is committed, in the next recording transaction (started now if none
        is running)."""
        recorded = asyncio.get_running_loop().create_future()
        self._unrecorded.append((outcome, recorded))
        if self._recording is None:
            # In a context of its own: it records many calls' outcomes, and must not run in this
            # call's trace (each outcome names its own, Claim.traceparent).
            self._recording = asyncio.create_task(
                self._record_groups(), name="gateway-outcomes", context=contextvars.Context()
            )
        await recorded

    async def _record_groups(self) -> None:
        """Record the waiting outcomes, a group per transaction, until none waits."""
        group: list[tuple[gateway_calls.Outcome, asyncio.Future[None]]] = []
        try:
            while self._unrecorded:
                group, self._unrecorded = self._unrecorded, []
                try:
                    await gateway_calls.record_outcomes(
                        self._sessions, [outcome for outcome, _ in group], self._settings, clock=self._clock
                    )
                except Exception as exc:
                    _settle(group, exc)
                else:
                    _settle(group, None)
        finally:
            self._recording = None
            # Cancelled mid-transaction (the loop is closing): nothing was recorded, and the calls
            # waiting for it must not wait for ever. Their claims run out; the calls are made again.
            for _, recorded in (*group, *self._unrecorded):
                recorded.cancel()
            self._unrecorded = []

    async def _sleep_until_woken(self, stopping: asyncio.Task[bool]) -> None:
        woken = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait(
                {woken, stopping}, timeout=self._settings.executor_sweep_interval_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            woken.cancel()


def _settle(waiting: list[tuple[gateway_calls.Outcome, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, recorded in waiting:
        if recorded.done():
            continue  # its call was cancelled meanwhile
        if error is None:
            recorded.set_result(None)
        else:
            recorded.set_exception(error)
