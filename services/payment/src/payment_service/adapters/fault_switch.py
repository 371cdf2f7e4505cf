"""A switch that makes the test gateway hang or fail, for fault-injection tests of the running
system (`PAYMENT_GATEWAY_FAULT_FILE`). Only ever wrapped around the built-in test gateway.

The file is looked at on every call; its content is read again only when its modification time
or size changed, so a call costs one `stat`:

    hang   the call never returns (the executor's timeout must cut it)
    error  the call raises GatewayUnavailable at once
    anything else, an empty file or no file: the gateway answers normally
"""

import asyncio
import os
from pathlib import Path
from uuid import UUID

from shared.logging import get_logger

from payment_service.domain import ChargeResult, GatewayUnavailable, PaymentGateway, RefundResult

log = get_logger(__name__)

FAULTS = ("hang", "error")


class FaultSwitch:
    def __init__(self, inner: PaymentGateway, fault_file: Path) -> None:
        self._inner = inner
        self._file = fault_file
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the content cached below
        self._fault: str | None = None

    async def charge(self, *, token: str, amount: int, currency: str, idempotency_key: str) -> ChargeResult:
        await self._inject("charge")
        return await self._inner.charge(token=token, amount=amount, currency=currency, idempotency_key=idempotency_key)

    async def refund(self, *, payment_id: UUID, amount: int, currency: str, idempotency_key: str) -> RefundResult:
        await self._inject("refund")
        return await self._inner.refund(
            payment_id=payment_id, amount=amount, currency=currency, idempotency_key=idempotency_key
        )

    def current_fault(self) -> str | None:
        try:
            stat = os.stat(self._file)
        except FileNotFoundError:
            self._seen, self._fault = None, None
            return None
        if self._seen != (stat.st_mtime_ns, stat.st_size):
            self._seen = (stat.st_mtime_ns, stat.st_size)
            content = self._file.read_text(errors="replace").strip()
            self._fault = content if content in FAULTS else None
            if content and self._fault is None:
                log.warning(
                    "gateway fault file has unknown content; ignored", file=str(self._file), content=content[:40]
                )
        return self._fault

    async def _inject(self, call: str) -> None:
        fault = self.current_fault()
        if fault == "hang":
            log.warning("gateway fault injected: hanging", call=call)
            await asyncio.Future()  # never resolved: only a cancellation (the timeout) ends it
        elif fault == "error":
            raise GatewayUnavailable(f"gateway fault injected: error ({self._file})")
