"""What each service's Kafka principal may do, and the admin's provisioning of it.

Deny by default (the brokers run the StandardAuthorizer with allow.everyone.if.no.acl.found=false):
a principal may do only what an ACL below grants. Each service
- writes its own topic (its relay) and the dead-letter topics of the topics it consumes (its worker
  dead-letters their records);
- reads the topics it consumes, in its own consumer group `<service>-service` (every worker of the
  service, a scale-out one too, is a member of it), and order also its own topic (the rebuild tool
  reads order-events back, without a group);
- describes the event topics and their configs: its start-up check (shared.kafka.provisioning
  .check_topics) compares them with their specs.
No service may create, delete or alter a topic, or touch another service's group. The producers are
idempotent, not transactional: since Kafka 3.0 an idempotent producer needs Write on a topic only, so
no cluster or transactional-id ACL is granted. The admin principal is a super user (server
properties): it provisions topics and these ACLs and runs the tools.

Principals that are not a service get their ACLs from a function of their own, listed in
`OTHER_PRINCIPALS`; provisioning grants `all_acls()`. Adding one: its SCRAM user in infra/kafka/kafka.sh
(SCRAM_PRINCIPALS) and infra/kafka/compose-broker.sh, its function here, an entry in OTHER_PRINCIPALS.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import CreateAclsRequest

from shared.events.topics import EVENT_TOPICS, INVENTORY_EVENTS, ORDER_EVENTS, PAYMENT_EVENTS, dead_letter_topic

# The topics each service's worker consumes (its entrypoints/worker.py TOPICS; a unit test keeps
# them equal), and the topics a service reads besides them.
CONSUMES: dict[str, tuple[str, ...]] = {
    "order": (INVENTORY_EVENTS, PAYMENT_EVENTS),
    "payment": (ORDER_EVENTS, INVENTORY_EVENTS),
    "inventory": (ORDER_EVENTS, PAYMENT_EVENTS),
}
ALSO_READS: dict[str, tuple[str, ...]] = {"order": (ORDER_EVENTS,)}  # order's rebuild tool
OWN_TOPIC = {"order": ORDER_EVENTS, "payment": PAYMENT_EVENTS, "inventory": INVENTORY_EVENTS}


# Kafka's wire codes (org.apache.kafka.common.acl / resource).
class ResourceType(IntEnum):
    TOPIC = 2
    GROUP = 3


class Operation(IntEnum):
    READ = 3
    WRITE = 4
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10


LITERAL = 3
ALLOW = 3


@dataclass(frozen=True)
class Acl:
    principal: str  # "User:<name>"
    resource_type: ResourceType
    resource_name: str
    operation: Operation


def consumer_group(service: str) -> str:
    return f"{service}-service"


def service_acls(service: str) -> list[Acl]:
    """Every ACL of one service's principal (named as the service)."""
    principal = f"User:{service}"
    every_event_topic = [t for topic in EVENT_TOPICS for t in (topic, dead_letter_topic(topic))]
    writes = [OWN_TOPIC[service], *(dead_letter_topic(t) for t in CONSUMES[service])]
    reads = [*CONSUMES[service], *ALSO_READS.get(service, ())]
    return [
        *(Acl(principal, ResourceType.TOPIC, t, Operation.WRITE) for t in writes),
        *(Acl(principal, ResourceType.TOPIC, t, Operation.READ) for t in reads),
        Acl(principal, ResourceType.GROUP, consumer_group(service), Operation.READ),
        *(Acl(principal, ResourceType.TOPIC, t, op) for t in every_event_topic for op in _DESCRIBING),
    ]


_DESCRIBING = (Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS)


def all_service_acls() -> list[Acl]:
    return [acl for service in CONSUMES for acl in service_acls(service)]


MONITOR = "monitor"


def monitor_acls() -> list[Acl]:
    """The lag exporter's principal: it learns the services' groups' committed offsets (OffsetFetch:
    Describe on the group and the topic) and the topics' offsets, also by timestamp (ListOffsets:
    Describe on the topic). It reads no record, joins no group, writes nothing."""
    principal = f"User:{MONITOR}"
    every_event_topic = [t for topic in EVENT_TOPICS for t in (topic, dead_letter_topic(topic))]
    return [
        *(Acl(principal, ResourceType.GROUP, consumer_group(service), Operation.DESCRIBE) for service in CONSUMES),
        *(Acl(principal, ResourceType.TOPIC, t, Operation.DESCRIBE) for t in every_event_topic),
    ]


CONNECT = "connect"
# Kafka Connect's worker group and the topics that hold its state (infra/connect/worker.properties.template).
CONNECT_GROUP = "ecommerce-connect"
CONNECT_STATE_TOPICS = ("connect-configs", "connect-offsets", "connect-status")
# Where each connector's heartbeat rows go (infra/connect/connector.json): read by nobody.
CONNECT_HEARTBEATS = "connect-heartbeats"


def connect_acls(event_topics: tuple[str, ...] = tuple(OWN_TOPIC.values())) -> list[Acl]:
    """Kafka Connect's principal, the Debezium relay (RELAY=debezium only: infra/scripts/connectors.py
    grants these, not provisioning, so a deployment on the built-in relay has no principal besides the
    services' that may write their topics). Its worker joins its own group and reads and writes its
    state topics (and checks their configs at start-up); its connectors' producers, idempotent, write
    the services' event topics and the heartbeats' topic. It reads no event topic, creates no topic."""
    principal = f"User:{CONNECT}"
    return [
        Acl(principal, ResourceType.GROUP, CONNECT_GROUP, Operation.READ),
        *(
            Acl(principal, ResourceType.TOPIC, t, op)
            for t in CONNECT_STATE_TOPICS
            for op in (Operation.READ, Operation.WRITE, *_DESCRIBING)
        ),
        *(Acl(principal, ResourceType.TOPIC, t, Operation.WRITE) for t in (*event_topics, CONNECT_HEARTBEATS)),
    ]


# Every principal that is neither a service nor a super user, with its ACLs.
OTHER_PRINCIPALS: dict[str, Callable[[], list[Acl]]] = {MONITOR: monitor_acls}


def all_acls() -> list[Acl]:
    """Every ACL provisioning grants: the services' and the other principals'."""
    return [*all_service_acls(), *(acl for acls in OTHER_PRINCIPALS.values() for acl in acls())]


async def grant(admin: AIOKafkaAdminClient, acls: list[Acl]) -> None:
    """Create the ACLs; one that exists already is left as it is (creating it again changes nothing),
    so provisioning can run at every start. aiokafka has no public ACL call yet: the admin client
    sends Kafka's CreateAcls request itself, one binding per request."""
    for acl in acls:
        request = CreateAclsRequest(
            acl.resource_type, acl.resource_name, LITERAL, acl.principal, "*", acl.operation, ALLOW
        )
        response = await admin._send_request(request)  # private: see the docstring
        for error_code, error_message in response.creation_responses:
            if error_code:
                raise KafkaError(f"creating ACL {acl} failed with error code {error_code}: {error_message}")
