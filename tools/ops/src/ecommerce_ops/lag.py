"""`lag`: how far behind each consumer group is, in records and in seconds (the age of the oldest
record it has not consumed), measured by `shared.kafka.lag` (what the lag exporter serves to
Prometheus too: one measurement, two readers)."""

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from shared.kafka.lag import PartitionLag, measure_lag
from shared.kafka.security import admin_client_config

# The seed's alert threshold (infra/monitoring/rules): shown red from there on.
ALERTING_RECORDS = 10_000


async def measure(bootstrap_servers: str | None, groups: Sequence[str] | None) -> list[PartitionLag]:
    """One measurement as the admin principal, of the services' groups unless `groups` says which."""
    measured = await measure_lag(admin_client_config(bootstrap_servers), groups=groups)
    return sorted(measured, key=lambda lag: (lag.group, lag.topic, lag.partition))


def lag_json(measured: Sequence[PartitionLag]) -> list[dict[str, Any]]:
    return [
        {
            "group": lag.group,
            "topic": lag.topic,
            "partition": lag.partition,
            "committed": lag.committed,
            "end": lag.end,
            "records": lag.records,
            "seconds": lag.seconds,
        }
        for lag in measured
    ]


def print_lag(console: Console, measured: Sequence[PartitionLag]) -> None:
    if not measured:
        console.print("No consumer group found.", style="yellow")
        return
    table = Table(title="Consumer lag", title_justify="left")
    for column, justify in (
        ("group", "left"),
        ("topic", "left"),
        ("partitions", "right"),
        ("records", "right"),
        ("seconds (max)", "right"),
        ("worst partition", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    by_group_topic: dict[tuple[str, str], list[PartitionLag]] = {}
    for lag in measured:
        by_group_topic.setdefault((lag.group, lag.topic), []).append(lag)
    for (group, topic), lags in by_group_topic.items():
        records = sum(lag.records for lag in lags)
        worst = max(lags, key=lambda lag: (lag.seconds, lag.records))
        seconds = worst.seconds
        style = "red" if records > ALERTING_RECORDS or seconds > 60 else ("yellow" if records else "green")
        table.add_row(
            group,
            topic,
            str(len(lags)),
            f"[{style}]{records}[/]",
            f"[{style}]{seconds:.1f}[/]",
            f"{worst.partition} ({worst.records} behind)" if worst.records else "-",
        )
    console.print(table)
