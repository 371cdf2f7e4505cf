"""Every Kafka topic the system uses, defined once. Services and provisioning import from here."""

from dataclasses import dataclass

SEVEN_DAYS_MS = 7 * 24 * 60 * 60 * 1000
THIRTY_DAYS_MS = 30 * 24 * 60 * 60 * 1000
DLT_SUFFIX = ".DLT"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


ORDER_EVENTS = "order-events"
PAYMENT_EVENTS = "payment-events"
INVENTORY_EVENTS = "inventory-events"
EVENT_TOPICS = (ORDER_EVENTS, PAYMENT_EVENTS, INVENTORY_EVENTS)
# Each topic has one writer, the service that owns it (its `service_name`): the `source` header of
# every event on the topic.
WRITERS = {ORDER_EVENTS: "order", PAYMENT_EVENTS: "payment", INVENTORY_EVENTS: "inventory"}

PARTITIONS = 12
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2


def dead_letter_topic(topic: str) -> str:
    return topic + DLT_SUFFIX


def _spec(name: str, retention_ms: int) -> TopicSpec:
    return TopicSpec(
        name=name,
        partitions=PARTITIONS,
        replication_factor=REPLICATION_FACTOR,
        config={
            "retention.ms": str(retention_ms),
            "min.insync.replicas": str(MIN_INSYNC_REPLICAS),
            "cleanup.policy": "delete",
        },
    )


# Dead letters wait for a human, so they are kept longer than the events themselves.
TOPIC_SPECS: tuple[TopicSpec, ...] = tuple(
    spec
    for topic in EVENT_TOPICS
    for spec in (_spec(topic, SEVEN_DAYS_MS), _spec(dead_letter_topic(topic), THIRTY_DAYS_MS))
)
