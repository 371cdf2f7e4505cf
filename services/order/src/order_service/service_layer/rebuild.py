"""Rebuild the orders projection by folding events, from the event store or from the topic, and
say whether the result equals the live projection.

From the store, every order is compared; `apply` then replaces the differing rows in one
transaction that blocks writers (each writer locks its order's row first).

From the topic, only orders whose whole history is on the topic can be compared. The rule: an order
is compared when its live version equals the number of its distinct events on the topic. Fewer
events (not yet published, or the first ones are past the topic's retention) make it "not
comparable"; more events than the live version are a difference, because an event reaches the
topic only after its transaction committed. Orders on the topic with no projection row (the topic
is shared with other environments and tests) are counted apart, not as differences. The topic only
verifies: the projection is repaired from the store, which holds every event for ever.
"""

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from shared.events import Envelope
from shared.events.codec import InvalidRecord, UnknownEventType, decode
from shared.events.topics import ORDER_EVENTS
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from order_service.adapters import event_store, order_topic, projection
from order_service.adapters.projection import ProjectedOrder
from order_service.domain import ORDER_EVENT_CLASSES, CorruptHistory, Order, RecordedEvent

NO_EVENTS_ON_TOPIC = "no events on the topic (not yet published, or past retention)"
EVENTS_MISSING_ON_TOPIC = "fewer events on the topic than its version (not yet published, or past retention)"
TOPIC_ONLY = "on the topic but not in the projection (another environment or a test)"


@dataclass(frozen=True)
class Difference:
    order_id: UUID
    problem: str
    fields: tuple[tuple[str, Any, Any], ...] = ()  # (field, live, rebuilt)

    def describe(self, max_fields: int = 3) -> str:
        shown = "; ".join(
            f"{name}: live={live!r} rebuilt={rebuilt!r}" for name, live, rebuilt in self.fields[:max_fields]
        )
        more = f"; and {len(self.fields) - max_fields} more fields" if len(self.fields) > max_fields else ""
        return f"order {self.order_id}: {self.problem}" + (f" ({shown}{more})" if shown else "")


@dataclass
class Report:
    source: str
    compared: int = 0
    equal: int = 0
    differences: list[Difference] = field(default_factory=list)
    not_comparable: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences

    def render(self, max_differences: int = 20) -> str:
        lines = [
            f"Rebuild of the orders projection from the {self.source}: {self.compared} orders compared, "
            f"{self.equal} equal, {len(self.differences)} differing."
        ]
        lines += [f"  {note}" for note in self.notes]
        for reason, count in sorted(self.not_comparable.items()):
            lines.append(f"  not compared, {reason}: {count}")
        if self.differences:
            lines.append(f"Differences (first {min(max_differences, len(self.differences))}):")
            lines += [f"  {difference.describe()}" for difference in self.differences[:max_differences]]
        if self.applied:
            lines.append("Applied: the projection rows that differed were replaced by the rebuilt ones.")
        lines.append("Result: the live projection " + ("EQUALS" if self.ok else "DIFFERS FROM") + " the rebuilt one.")
        return "\n".join(lines)


def compare(report: Report, rebuilt: Mapping[UUID, ProjectedOrder], live: Mapping[UUID, ProjectedOrder]) -> None:
    """Count every order of `rebuilt` and of `live` into the report."""
    for order_id in sorted(rebuilt.keys() | live.keys()):
        mine, theirs = live.get(order_id), rebuilt.get(order_id)
        report.compared += 1
        if theirs is None:  # then it is in the projection
            report.differences.append(Difference(order_id, "in the projection but has no events"))
        elif mine is None:
            report.differences.append(Difference(order_id, "missing from the projection"))
        elif mine == theirs:
            report.equal += 1
        else:
            report.differences.append(Difference(order_id, "differs", tuple(mine.differences(theirs))))


def fold(history: Sequence[RecordedEvent]) -> ProjectedOrder:
    return projection.project(Order.from_history(history))


# -- from the event store ---------------------------------------------------------------------------


async def rebuild_from_store(sessions: async_sessionmaker[AsyncSession], *, apply: bool = False) -> Report:
    report = Report(source="event store")
    async with sessions() as session, session.begin():
        if apply:
            await projection.lock_table(session)
        else:
            # One snapshot for both reads, without blocking any writer.
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        rebuilt, unfoldable = await _fold_store(session)
        live = await projection.all_rows(session)
        compare(report, rebuilt, {order_id: row for order_id, row in live.items() if order_id not in unfoldable})
        for order_id, problem in unfoldable.items():
            report.compared += 1
            report.differences.append(Difference(order_id, f"its stored history cannot be folded: {problem}"))
        if apply and report.differences:
            await _replace(session, rebuilt, live, keep=unfoldable.keys())
            report.applied = True
    return report


async def _fold_store(session: AsyncSession) -> tuple[dict[UUID, ProjectedOrder], dict[UUID, str]]:
    rebuilt: dict[UUID, ProjectedOrder] = {}
    unfoldable: dict[UUID, str] = {}
    async for history in event_store.all_histories(session):
        order_id = history[0].order_id
        try:
            rebuilt[order_id] = fold(event_store.recorded_history(history))
        except (CorruptHistory, ValidationError) as exc:
            unfoldable[order_id] = str(exc).splitlines()[0]
    return rebuilt, unfoldable


async def _replace(
    session: AsyncSession,
    rebuilt: Mapping[UUID, ProjectedOrder],
    live: Mapping[UUID, ProjectedOrder],
    keep: Iterable[UUID],
) -> None:
    kept = set(keep)
    stale = [order_id for order_id, row in live.items() if order_id not in kept and rebuilt.get(order_id) != row]
    fresh = [row for order_id, row in rebuilt.items() if live.get(order_id) != row]
    await projection.remove(session, stale)
    await projection.insert_many(session, fresh)


# -- from the topic ---------------------------------------------------------------------------------


@dataclass
class TopicHistories:
    """Order events read from the topic: deduplicated by event id (the relay delivers at least
    once), grouped by order in offset order, numbered 1, 2, ... as the store numbers them."""

    histories: dict[UUID, list[RecordedEvent]] = field(default_factory=dict)
    records: int = 0
    duplicates: int = 0
    unreadable: int = 0
    other_events: int = 0
    _seen: set[UUID] = field(default_factory=set)

    def add_record(self, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> None:
        self.records += 1
        try:
            envelope = decode(value, headers)
        except (InvalidRecord, UnknownEventType):
            self.unreadable += 1
            return
        self.add(envelope)

    def add(self, envelope: Envelope) -> None:
        event = envelope.event
        if not isinstance(event, ORDER_EVENT_CLASSES):
            self.other_events += 1
            return
        if envelope.event_id in self._seen:
            self.duplicates += 1
            return
        self._seen.add(envelope.event_id)
        history = self.histories.setdefault(event.order_id, [])
        history.append(RecordedEvent(version=len(history) + 1, event=event, occurred_at=envelope.occurred_at))

    def notes(self, topic: str) -> list[str]:
        return [
            f"read {self.records} records from {topic}: {len(self._seen)} distinct order events of "
            f"{len(self.histories)} orders, {self.duplicates} duplicates dropped, "
            f"{self.unreadable} unreadable, {self.other_events} of other types"
        ]


def compare_with_topic(
    topic: TopicHistories, live: Mapping[UUID, ProjectedOrder], topic_name: str = ORDER_EVENTS
) -> Report:
    report = Report(source=f"topic {topic_name}", notes=topic.notes(topic_name))
    comparable: dict[UUID, ProjectedOrder] = {}
    for order_id, history in topic.histories.items():
        row = live.get(order_id)
        if row is None:
            report.not_comparable[TOPIC_ONLY] += 1
        elif len(history) < row.version:
            report.not_comparable[EVENTS_MISSING_ON_TOPIC] += 1
        else:
            try:
                comparable[order_id] = fold(history)
            except CorruptHistory as exc:
                report.compared += 1
                report.differences.append(Difference(order_id, f"its history on the topic cannot be folded: {exc}"))
    report.not_comparable[NO_EVENTS_ON_TOPIC] += len(live.keys() - topic.histories.keys())
    compare(report, comparable, {order_id: live[order_id] for order_id in comparable})
    report.not_comparable = +report.not_comparable  # drop zero counts
    return report


async def rebuild_from_topic(
    sessions: async_sessionmaker[AsyncSession], kafka: Mapping[str, Any], topic: str = ORDER_EVENTS
) -> Report:
    histories = TopicHistories()
    # The end offsets are fixed before the projection is read, so the projection can only be ahead
    # of what was read (not comparable), never behind it.
    async for record in order_topic.read_to_end(kafka, topic):
        histories.add_record(record.value, record.headers or ())
    async with sessions() as session:
        live = await projection.all_rows(session)
    return compare_with_topic(histories, live, topic)
