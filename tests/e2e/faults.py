"""Fault injectors for the fault matrix (test_fault_matrix.py): each breaks one part of the running
local stack as a crash or an outage would, and returns once that part is back.

They act through the operator's tools only: supervisorctl for processes and brokers,
`infra/postgres/postgres.sh` for the database, and the payment test gateway's fault file.
`restore_everything` undoes whatever a run left broken; call it in a `finally`.
"""

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from shared.events.topics import EVENT_TOPICS, ORDER_EVENTS
from shared.kafka.security import admin_client_config

from .conftest import REPO, supervisorctl
from .storefront import eventually

SERVICES = ("order", "payment", "inventory")
KINDS = ("api", "relay", "worker")
BROKER_PROGRAMS = tuple(f"kafka:kafka-{node}" for node in (1, 2, 3))
SERVICE_PROGRAMS = tuple(f"services:{service}-{kind}" for service in SERVICES for kind in KINDS)
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096")
POSTGRES_SH = REPO / "infra/postgres/postgres.sh"
# The payment worker's test gateway reads this file (PAYMENT_GATEWAY_FAULT_FILE): "hang" or "error".
GATEWAY_FAULT_FILE = Path(os.environ.get("PAYMENT_GATEWAY_FAULT_FILE", REPO / ".run/gateway-fault"))
# What an admin request raises while the broker it picked is down or restarting.
KAFKA_UNAVAILABLE = (KafkaError, OSError, TimeoutError)

OUTAGE_SECONDS = 10


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# --- processes under supervisord -------------------------------------------------------------------
async def ctl(*args: str) -> str:
    return await asyncio.to_thread(supervisorctl, *args)


async def program_states(*programs: str) -> dict[str, tuple[str, int]]:
    """Each program's supervisord state (RUNNING, STARTING, BACKOFF, EXITED, FATAL, ...) and pid (0 if none)."""
    states = {}
    # One line a program: "services:order-api    RUNNING   pid 3160, uptime 0:02:28"
    for line in (await ctl("status", *programs)).splitlines():
        words = line.replace(",", " ").split()
        if len(words) > 1 and words[0] in programs:
            pid = int(words[3]) if len(words) > 3 and words[2] == "pid" and words[3].isdigit() else 0
            states[words[0]] = (words[1], pid)
    return {program: states.get(program, ("UNKNOWN", 0)) for program in programs}


async def program_state(program: str) -> tuple[str, int]:
    return (await program_states(program))[program]


async def wait_running_again(program: str, old_pid: int, *, timeout: float = 60) -> None:
    """Until supervisord runs the program under a new pid; start it if supervisord gave up on it
    (EXITED is left alone: with autorestart it is the moment before supervisord starts it again)."""

    async def restarted() -> bool:
        state, pid = await program_state(program)
        if state in ("FATAL", "STOPPED"):
            await ctl("start", program)
        return state == "RUNNING" and pid not in (0, old_pid)

    await eventually(restarted, timeout=timeout, what=f"supervisord to run {program} again")


async def sigkill(program: str, *, timeout: float = 60) -> None:
    """SIGKILL the program's process, as a crash would; return once supervisord restarted it."""

    async def running_pid() -> int:
        state, pid = await program_state(program)
        return pid if state == "RUNNING" else 0

    pid = await eventually(running_pid, timeout=timeout, what=f"{program} RUNNING before it is killed")
    await ctl("signal", "KILL", program)
    await wait_running_again(program, pid, timeout=timeout)


# --- Kafka -----------------------------------------------------------------------------------------
async def describe_partitions(topics: tuple[str, ...]) -> list[dict]:
    """Every partition of these topics, with leader, replicas and ISR (a fresh client: any live broker answers)."""
    admin = AIOKafkaAdminClient(**admin_client_config(BOOTSTRAP), request_timeout_ms=5000, client_id="fault-matrix")
    await admin.start()
    try:
        return [partition for topic in await admin.describe_topics(list(topics)) for partition in topic["partitions"]]
    finally:
        await admin.close()


async def partition_leader(topic: str = ORDER_EVENTS, partition: int = 0) -> int:
    """The node id of the broker that leads one partition."""
    partitions = await describe_partitions((topic,))
    leader = next(p["leader"] for p in partitions if p["partition"] == partition)
    assert leader in (1, 2, 3), f"{topic}-{partition} has no leader: {partitions}"
    return leader


async def wait_in_every_isr(nodes: tuple[int, ...], *, timeout: float) -> None:
    """Until each of these brokers is in the ISR of every event-topic partition it replicates."""

    async def in_sync() -> bool:
        partitions = await describe_partitions(EVENT_TOPICS)
        return all(node in p["isr"] for p in partitions for node in nodes if node in p["replicas"])

    await eventually(
        in_sync, timeout=timeout, what=f"brokers {nodes} in every ISR of the event topics", tolerate=KAFKA_UNAVAILABLE
    )


async def kill_partition_leader(topic: str = ORDER_EVENTS, partition: int = 0) -> None:
    """SIGKILL the broker leading `topic`-`partition`; return once it is back in every ISR it belongs to."""
    leader = await partition_leader(topic, partition)
    print(f"{utc_now()}   {topic}-{partition} is led by broker {leader}")
    await sigkill(f"kafka:kafka-{leader}", timeout=30)
    await wait_in_every_isr((leader,), timeout=80)


# --- Postgres --------------------------------------------------------------------------------------
async def postgres(command: str, *, timeout: float = 60) -> None:
    process = await asyncio.create_subprocess_exec(
        "bash", str(POSTGRES_SH), command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode == 0, f"postgres.sh {command} failed: {output.decode()}"


async def restart_postgres() -> None:
    """A fast restart: every session ends, the database is back within a second or two."""
    await postgres("restart")


async def stop_postgres(seconds: float) -> None:
    """Postgres away for `seconds`, then started again."""
    await postgres("down")
    await asyncio.sleep(seconds)  # the outage itself: its length is the point
    await postgres("start")


# --- the payment gateway ---------------------------------------------------------------------------
def set_gateway_fault(mode: str | None) -> None:
    """'hang' or 'error' for every gateway call of the payment worker; None for a healthy gateway."""
    if mode is None:
        GATEWAY_FAULT_FILE.unlink(missing_ok=True)
        return
    # Written aside and renamed: the worker never reads half a word.
    draft = GATEWAY_FAULT_FILE.with_suffix(".draft")
    draft.write_text(mode)
    draft.replace(GATEWAY_FAULT_FILE)


def reads_gateway_fault_file(pid: int) -> bool:
    """Whether process `pid` was started with PAYMENT_GATEWAY_FAULT_FILE pointing at the file written here."""
    try:
        environment = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    settings = [entry.partition("=")[2] for entry in environment if entry.startswith("PAYMENT_GATEWAY_FAULT_FILE=")]
    return any(Path(setting).resolve() == GATEWAY_FAULT_FILE.resolve() for setting in settings)


async def gateway_fault_switch_wired(program: str = "services:payment-worker") -> bool:
    """Whether the running payment worker reads the fault file: without it a gateway fault changes nothing."""
    _state, pid = await program_state(program)
    return bool(pid) and reads_gateway_fault_file(pid)


async def gateway_fault(mode: str, seconds: float) -> None:
    set_gateway_fault(mode)
    try:
        await asyncio.sleep(seconds)  # the outage itself
    finally:
        set_gateway_fault(None)


# --- the matrix ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[], Awaitable[None]]  # returns once the broken part is back


# The long outages first: what they leave behind (payments to retry, records that waited for the
# database) drains while the quick faults follow, so settling is timed from a fault like any other.
MATRIX = (
    Fault("gateway-hang", partial(gateway_fault, "hang", OUTAGE_SECONDS)),
    Fault("gateway-error", partial(gateway_fault, "error", OUTAGE_SECONDS)),
    Fault("postgres-restart", restart_postgres),
    Fault("postgres-stop", partial(stop_postgres, OUTAGE_SECONDS)),
    Fault("partition-leader", kill_partition_leader),
    *(Fault(program.removeprefix("services:"), partial(sigkill, program)) for program in SERVICE_PROGRAMS),
)


def select_faults(spec: str) -> list[Fault]:
    """`all`, `none`, or names separated by commas (e.g. `order-api,postgres-stop`), in matrix order."""
    if spec == "all":
        return list(MATRIX)
    if spec == "none":
        return []
    wanted = {name.strip() for name in spec.split(",") if name.strip()}
    unknown = wanted - {fault.name for fault in MATRIX}
    assert not unknown, f"unknown faults {sorted(unknown)}; known: {[fault.name for fault in MATRIX]}"
    return [fault for fault in MATRIX if fault.name in wanted]


@dataclass
class FaultLog:
    """Which fault is under way (the window a client's error is counted in) and when each one ran."""

    window: str = "before faults"
    entries: list[dict] = field(default_factory=list)
    last_fault_over: float | None = None  # time.monotonic() when the last fault's part was back


async def run_faults(faults: list[Fault], log: FaultLog, *, recovery: float, timeout: float = 120) -> None:
    """Each fault in turn, after `recovery` seconds of load (the first one after as long a healthy
    start). Returns as soon as the last fault's part is back: from then on the system has to settle."""
    for fault in faults:
        await asyncio.sleep(recovery)  # load against the recovered part; its errors count in the last window
        log.window = fault.name
        started, started_at = time.monotonic(), utc_now()
        print(f"{started_at} fault {fault.name}: injecting")
        await asyncio.wait_for(fault.inject(), timeout)
        log.last_fault_over = time.monotonic()
        seconds = round(log.last_fault_over - started, 1)
        log.entries.append({"fault": fault.name, "started": started_at, "back_after_s": seconds})
        print(f"{utc_now()} fault {fault.name}: back after {seconds} s")
    log.window = "after faults"


async def programs_not_running() -> dict[str, str]:
    """The supervisord programs that are not RUNNING, with their state (FATAL: supervisord gave up)."""
    states = await program_states(*BROKER_PROGRAMS, *SERVICE_PROGRAMS)
    return {program: state for program, (state, _pid) in states.items() if state != "RUNNING"}


async def restore_everything(*, timeout: float = 180) -> None:
    """Whatever a run broke, running again: the gateway healthy, Postgres up, every program started,
    every broker back in its ISRs. Safe to call when nothing is broken."""
    programs = (*BROKER_PROGRAMS, *SERVICE_PROGRAMS)
    set_gateway_fault(None)
    async with asyncio.timeout(timeout):
        await postgres("start")
        for program, (state, _pid) in (await program_states(*programs)).items():
            if state in ("EXITED", "FATAL", "STOPPED"):
                await ctl("start", program)

        async def all_running() -> bool:
            return not await programs_not_running()

        await eventually(all_running, timeout=60, what="every supervisord program RUNNING")
        await wait_in_every_isr((1, 2, 3), timeout=timeout)
