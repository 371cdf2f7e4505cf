"""`ecommerce`: the operator's command line (typer for the commands, rich for the output).

    ecommerce saga trace ORDER_ID        an order's timeline across the topics, and its state
    ecommerce saga stuck                 orders still waiting for an answer, and where each stopped
    ecommerce dlt list [TOPIC]           the dead letters
    ecommerce dlt show TOPIC [P:]OFFSET  one dead letter: headers, cause, stack trace, value
    ecommerce dlt redrive ...            send dead letters back (a dry run unless --execute)
    ecommerce lag                        consumer lag per group, in records and seconds

Kafka is read (and redriven to) as the admin principal (shared.kafka.security.admin_client_config),
the APIs with a bearer token: --token / ECOMMERCE_TOKEN, else a development support token.
Exit codes: 0 done; 1 a redrive refused, nothing found, or Kafka or an API unreachable; 2 wrong usage.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn, TypeVar
from uuid import UUID

import httpx
import typer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import dlt, render, saga
from .apis import (
    LOCAL_INVENTORY_URL,
    LOCAL_ORDER_URL,
    LOCAL_PAYMENT_URL,
    Endpoints,
    NoToken,
    ServiceApis,
    operator_token,
)
from .dead_letters import DEFAULT_MAX_REDRIVES, DeadLetterRecord, plan_redrive, select
from .kafka_reading import KafkaReader, started, writer
from .lag import lag_json, measure, print_lag

T = TypeVar("T")

app = typer.Typer(
    help="Operate the e-commerce saga: trace orders, find stuck ones, inspect and redrive dead letters, see lag.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
saga_app = typer.Typer(help="An order's saga: its timeline, or the orders stuck in one.", no_args_is_help=True)
dlt_app = typer.Typer(help="The dead-letter topics: list, show, redrive.", no_args_is_help=True)
app.add_typer(saga_app, name="saga")
app.add_typer(dlt_app, name="dlt")

out = Console()
err = Console(stderr=True)


@dataclass
class Context:
    endpoints: Endpoints
    token: str | None
    bootstrap_servers: str | None

    def apis(self) -> ServiceApis:
        try:
            return ServiceApis(self.endpoints, operator_token(self.token))
        except NoToken as exc:
            fail(str(exc), code=2)


def fail(message: str, *, code: int = 1) -> NoReturn:
    err.print(message, style="bold red")
    raise typer.Exit(code)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's I/O; what it cannot reach is a one-line error (exit 1), not a traceback."""
    try:
        return asyncio.run(coroutine)
    except httpx.HTTPStatusError as exc:
        fail(f"{exc.request.method} {exc.request.url} answered {exc.response.status_code}: {exc.response.text[:300]}")
    except httpx.HTTPError as exc:
        fail(f"cannot reach {exc.request.url}: {exc!r}")
    except (KafkaError, OSError) as exc:
        fail(f"Kafka: {exc!r} (is the cluster up? KAFKA_BOOTSTRAP_SERVERS, KAFKA_ADMIN_PASSWORD)")


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (stdout stays clean for --json); it disappears when done."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda count: progress.advance(task, count)


@app.callback()
def options(
    ctx: typer.Context,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="ECOMMERCE_TOKEN",
            help="Bearer token for the APIs (default: a development support token)",
            show_default=False,
        ),
    ] = None,
    order_url: Annotated[str, typer.Option(envvar="ORDER_URL")] = LOCAL_ORDER_URL,
    payment_url: Annotated[str, typer.Option(envvar="PAYMENT_URL")] = LOCAL_PAYMENT_URL,
    inventory_url: Annotated[str, typer.Option(envvar="INVENTORY_URL")] = LOCAL_INVENTORY_URL,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka brokers (default: the local cluster)", show_default=False
        ),
    ] = None,
) -> None:
    ctx.obj = Context(Endpoints(order_url, payment_url, inventory_url), token, bootstrap_servers)


JsonOption = Annotated[bool, typer.Option("--json", help="JSON on stdout, for scripts")]


# --- saga ------------------------------------------------------------------------------------------
@saga_app.command("trace")
def saga_trace(ctx: typer.Context, order_id: UUID, as_json: JsonOption = False) -> None:
    """The order's timeline across the three topics and their dead letters, and the three services' state."""
    context: Context = ctx.obj

    async def work() -> saga.SagaTrace:
        async with context.apis() as apis, KafkaReader(context.bootstrap_servers) as kafka:
            return await saga.trace(apis, kafka, order_id)

    started_at = time.perf_counter()
    try:
        found = run(work())
    except saga.OrderNotFound as exc:
        fail(str(exc))
    if as_json:
        render.print_json(render.trace_json(found))
    else:
        render.print_trace(out, found)
    (err if as_json else out).print(
        f"read {found.records_read} records of {len(saga.SAGA_TOPICS)} partitions in "
        f"{time.perf_counter() - started_at:.2f} s",
        style="dim",
    )


@saga_app.command("stuck")
def saga_stuck(
    ctx: typer.Context,
    older_than: Annotated[float, typer.Option(help="Seconds since the order was placed", min=0)] = 30.0,
    limit: Annotated[int, typer.Option(help="At most this many orders", min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Orders not terminal (PENDING, AWAITING_PAYMENT) after --older-than seconds, and where each stopped."""
    context: Context = ctx.obj
    now = datetime.now(UTC)

    async def work() -> list[saga.SagaTrace]:
        async with context.apis() as apis, KafkaReader(context.bootstrap_servers) as kafka:
            order_ids = await saga.stuck_orders(apis, older_than_s=older_than, limit=limit, now=now)
            traces = []
            with progress_bar("tracing stuck orders", len(order_ids)) as advance:
                for order_id in order_ids:
                    try:
                        traces.append(await saga.trace(apis, kafka, order_id))
                    except saga.OrderNotFound:
                        pass  # gone between the listing and the trace
                    advance(1)
            return traces

    traces = run(work())
    if as_json:
        render.print_json([render.trace_json(found) for found in traces])
    else:
        render.print_stuck(out, traces, now, older_than)


# --- dead letters ----------------------------------------------------------------------------------
def dead_letter_topics(topic: str | None) -> tuple[str, ...]:
    return (dlt.dead_letter_topic_named(topic),) if topic else dlt.DEAD_LETTER_TOPICS


async def read_letters(context: Context, topics: tuple[str, ...]) -> list[DeadLetterRecord]:
    async with KafkaReader(context.bootstrap_servers) as kafka:
        try:
            total = await dlt.count_dead_letters(kafka, topics)
        except LookupError as exc:
            fail(str(exc), code=2)
        with progress_bar(f"reading {', '.join(topics)}", total) as advance:
            return await dlt.read_dead_letters(kafka, topics, progress=advance)


@dlt_app.command("list")
def dlt_list(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Argument(help="order-events.DLT (or order-events); default: every DLT")] = None,
    sent_back: Annotated[
        bool, typer.Option("--sent-back", help="Also count how often each was redriven (reads the original partitions)")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The dead letters: position, event type, order, event id, cause, original position, the redrive
    count the record carried, age."""
    context: Context = ctx.obj
    letters = run(read_letters(context, dead_letter_topics(topic)))
    counted = run(count_sent_back(context, letters)) if sent_back and letters else None
    now = datetime.now(UTC)
    if as_json:
        render.print_json([render.letter_json(letter, now, counted) for letter in letters])
    else:
        render.print_letters(out, letters, now, counted)


async def count_sent_back(context: Context, letters: list[DeadLetterRecord]) -> Counter[str]:
    async with KafkaReader(context.bootstrap_servers) as kafka:
        with progress_bar("looking for redriven copies", None) as advance:
            return await dlt.times_sent_back(kafka, letters, progress=advance)


@dlt_app.command("show")
def dlt_show(
    ctx: typer.Context,
    topic: Annotated[str, typer.Argument(help="order-events.DLT (or order-events)")],
    position: Annotated[str, typer.Argument(help="PARTITION:OFFSET, or OFFSET if only one partition has it")],
) -> None:
    """One dead letter: every header decoded, the cause, the stack trace, the value."""
    try:
        letters = dlt.find(run(read_letters(ctx.obj, dead_letter_topics(topic))), position)
    except ValueError:
        fail(f"{position!r} is not OFFSET or PARTITION:OFFSET", code=2)
    if not letters:
        fail(f"no dead letter at {position} in {dlt.dead_letter_topic_named(topic)}")
    if len(letters) > 1:
        partitions = ", ".join(str(letter.partition) for letter in letters)
        fail(f"offset {position} is in partitions {partitions}: give PARTITION:OFFSET")
    render.print_letter(out, letters[0], datetime.now(UTC))


@dlt_app.command("redrive")
def dlt_redrive(
    ctx: typer.Context,
    event_id: Annotated[
        list[str] | None, typer.Option("--event-id", help="The dead letters of this event (repeatable)")
    ] = None,
    cause: Annotated[
        str | None, typer.Option(help="The dead letters whose exception class or message contains this")
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every dead letter (of --topic, if given)")] = False,
    topic: Annotated[str | None, typer.Option(help="Only this DLT (order-events.DLT or order-events)")] = None,
    max_redrives: Annotated[
        int, typer.Option(help="Refuse a record already redriven this many times", min=0)
    ] = DEFAULT_MAX_REDRIVES,
    execute: Annotated[
        bool, typer.Option("--execute", help="Send them; without it, only show what would be sent")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Send dead letters back to their original topic and partition (key, value, event headers, and a
    redrive-count header one higher). A dry run unless --execute."""
    if not (event_id or cause or everything):
        fail("choose what to redrive: --event-id, --cause or --all", code=2)
    context: Context = ctx.obj
    letters = run(read_letters(context, dead_letter_topics(topic)))
    plan = plan_redrive(
        select(letters, event_ids=event_id or (), cause=cause, everything=everything), max_redrives=max_redrives
    )
    now = datetime.now(UTC)
    sent: list[RecordMetadata] = []
    if execute and plan.redrives:

        async def send() -> list[RecordMetadata]:
            async with started(writer(context.bootstrap_servers)) as producer:
                with progress_bar("redriving", len(plan.redrives)) as advance:
                    return await dlt.send(producer, plan.redrives, progress=advance)

        sent = run(send())
    if as_json:
        render.print_json(render.plan_json(plan, now, sent=sent))
    else:
        render.print_plan(out, plan, execute=execute)
        for landed in sent:
            out.print(f"sent to {landed.topic}:{landed.partition}:{landed.offset}", style="green")
        if sent:
            out.print(f"Sent {len(sent)}; follow each with `ecommerce saga trace ORDER_ID`.", style="green")
    if plan.refused or not (plan.redrives or plan.superseded):
        raise typer.Exit(1)


# --- lag -------------------------------------------------------------------------------------------
@app.command("lag")
def lag(
    ctx: typer.Context,
    group: Annotated[
        list[str] | None, typer.Option(help="Only this consumer group (repeatable); default: the services'")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Consumer lag per group and partition: records behind, and the age of the oldest unconsumed one."""
    context: Context = ctx.obj
    measured = run(measure(context.bootstrap_servers, group or None))
    if as_json:
        render.print_json(lag_json(measured))
    else:
        print_lag(out, measured)


def main() -> None:
    app()
