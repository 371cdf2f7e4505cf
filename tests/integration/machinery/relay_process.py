"""An outbox relay in a process of its own, so that a test can SIGKILL it.

    relay_process.py SETTINGS_JSON [--crash-before-mark]

Reports `{"pid", "leader", "published"}` as a JSON line on stdout every 50 ms. With
`--crash-before-mark` it kills itself with SIGKILL at its first `mark_published`: after the broker
acknowledged the whole batch, before the batch is marked published in the outbox.
"""

import asyncio
import json
import os
import signal
import sys

from machinery_support import log_to_stderr, report
from prometheus_client import REGISTRY
from shared.db import asyncpg_dsn
from shared.logging import configure_logging
from shared.outbox.relay import OutboxRelay
from shared.settings import ServiceSettings


class RelayKilledBeforeMark(OutboxRelay):
    async def mark_published(self, conn, ids):  # type: ignore[no-untyped-def]
        report(pid=os.getpid(), leader=1, published=self.published, dying_with_unmarked=len(ids))
        os.kill(os.getpid(), signal.SIGKILL)


async def main() -> None:
    settings = ServiceSettings(**json.loads(sys.argv[1]))
    configure_logging(settings.service_name, "relay", level="INFO", fmt="console")
    log_to_stderr()
    relay_class = RelayKilledBeforeMark if "--crash-before-mark" in sys.argv[2:] else OutboxRelay
    relay = relay_class(settings, asyncpg_dsn(settings.database_url))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    running = asyncio.create_task(relay.run(stop))
    while not running.done():
        leader = REGISTRY.get_sample_value("relay_is_leader", {"service": settings.service_name}) or 0
        report(pid=os.getpid(), leader=int(leader), published=relay.published)
        await asyncio.wait([running], timeout=0.05)
    await running
    report(pid=os.getpid(), leader=0, published=relay.published, stopped=True)


if __name__ == "__main__":
    asyncio.run(main())
