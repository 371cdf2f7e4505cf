"""Kafka Connect's principal (the Debezium relay, RELAY=debezium): what it may do, as data. Its ACLs
are granted by infra/scripts/connectors.py, not by the default provisioning."""

from shared.events.topics import EVENT_TOPICS, dead_letter_topic
from shared.kafka.acls import CONNECT_HEARTBEATS, CONNECT_STATE_TOPICS, Operation, ResourceType, all_acls, connect_acls


def test_connect_writes_the_event_topics_but_reads_none_of_them_and_no_dead_letter_topic():
    on_event_topics = {
        (acl.resource_name, acl.operation) for acl in connect_acls() if acl.resource_name in EVENT_TOPICS
    }
    assert on_event_topics == {(topic, Operation.WRITE) for topic in EVENT_TOPICS}
    assert not any(acl.resource_name == dead_letter_topic(t) for acl in connect_acls() for t in EVENT_TOPICS)


def test_connect_reads_and_writes_its_own_state_topics_writes_its_heartbeats_and_joins_its_own_group_only():
    own = {(acl.resource_name, acl.operation) for acl in connect_acls() if acl.resource_name not in EVENT_TOPICS}
    groups = {acl.resource_name for acl in connect_acls() if acl.resource_type is ResourceType.GROUP}
    on_state = {Operation.READ, Operation.WRITE, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS}
    assert own == {
        *((topic, operation) for topic in CONNECT_STATE_TOPICS for operation in on_state),
        (CONNECT_HEARTBEATS, Operation.WRITE),
        ("ecommerce-connect", Operation.READ),
    }
    assert groups == {"ecommerce-connect"}


def test_the_default_provisioning_grants_connect_nothing():
    assert not any(acl.principal == "User:connect" for acl in all_acls())
