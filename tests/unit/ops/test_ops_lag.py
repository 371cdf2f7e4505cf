"""`ecommerce lag` shows shared.kafka.lag's measurement per group and topic: the records behind
summed over the partitions, the oldest unconsumed record's age, and the partition that lags most."""

from ecommerce_ops.lag import lag_json, print_lag
from rich.console import Console
from shared.kafka.lag import PartitionLag


def test_the_lag_is_summed_per_group_and_topic_with_its_worst_partition_named() -> None:
    measured = [
        PartitionLag("payment-service", "order-events", 0, committed=90, end=100, records=10, seconds=2.5),
        PartitionLag("payment-service", "order-events", 1, committed=5, end=35, records=30, seconds=7.25),
        PartitionLag("order-service", "payment-events", 0, committed=None, end=0, records=0, seconds=0.0),
    ]
    console = Console(record=True, width=160)

    print_lag(console, measured)
    text = console.export_text()

    (row,) = [line for line in text.splitlines() if "payment-service" in line]
    assert " 40 " in row, "10 + 30 records behind"
    assert "7.2" in row, "the oldest unconsumed record of any partition"
    assert "1 (30 behind)" in row
    assert lag_json(measured)[2] == {
        "group": "order-service",
        "topic": "payment-events",
        "partition": 0,
        "committed": None,
        "end": 0,
        "records": 0,
        "seconds": 0.0,
    }
