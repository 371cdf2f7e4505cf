"""An event worker in a process of its own, so that a test can SIGKILL it.

    worker_process.py SETTINGS_JSON TOPIC EVENT_TYPE KEY[,KEY...] [--crash-before-offset-commit]

Its handler for EVENT_TYPE applies the tests' effect (machinery_support.apply_effect). With
`--crash-before-offset-commit` it kills itself with SIGKILL at the first offset commit after it
handled a record with one of the KEYs: the database transactions are committed, the offsets are not.
Reports `{"pid", "started"}` as a JSON line on stdout when it starts, and what it leaves uncommitted
right before it dies.
"""

import asyncio
import json
import os
import signal
import sys

from machinery_support import apply_effect, log_to_stderr, report
from shared.consumer import EventWorker
from shared.db import create_engine, create_session_factory
from shared.logging import configure_logging
from shared.settings import ServiceSettings


class WorkerKilledBeforeOffsetCommit(EventWorker):
    test_keys: frozenset[bytes] = frozenset()
    handled_test_record = False

    async def handle_batch(self, records, lane):  # type: ignore[no-untyped-def]
        await super().handle_batch(records, lane)
        if any(record.key in self.test_keys for record in records):
            self.handled_test_record = True

    async def commit(self) -> None:
        if self.handled_test_record:
            uncommitted = self._offsets.snapshot()
            report(pid=os.getpid(), dying_with_uncommitted={str(tp): o for tp, o in uncommitted.items()})
            os.kill(os.getpid(), signal.SIGKILL)
        await super().commit()


async def main() -> None:
    settings = ServiceSettings(**json.loads(sys.argv[1]))
    topic, event_type, keys = sys.argv[2], sys.argv[3], sys.argv[4]
    configure_logging(settings.service_name, "worker", level="INFO", fmt="console")
    log_to_stderr()
    engine = create_engine(settings, role="worker")
    worker_class = EventWorker
    if "--crash-before-offset-commit" in sys.argv[5:]:
        worker_class = WorkerKilledBeforeOffsetCommit
        WorkerKilledBeforeOffsetCommit.test_keys = frozenset(key.encode() for key in keys.split(","))
    worker = worker_class(settings, create_session_factory(engine), {event_type: apply_effect}, [topic])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    report(pid=os.getpid(), started=True)
    try:
        await worker.run(stop)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
