"""Kafka Connect's principal (`connect`, RELAY=debezium only): what its ACLs let it do, and nothing
more (docs/security.md, "Kafka principals and ACLs")."""

from shared.kafka.acls import (
    CONNECT_GROUP,
    CONNECT_HEARTBEATS,
    CONNECT_STATE_TOPICS,
    OTHER_PRINCIPALS,
    OWN_TOPIC,
    Operation,
    ResourceType,
    connect_acls,
)


def granted(resource_type: ResourceType) -> set[tuple[str, Operation]]:
    return {(acl.resource_name, acl.operation) for acl in connect_acls() if acl.resource_type == resource_type}


def test_connect_writes_the_three_event_topics_and_its_heartbeats_and_reads_none_of_them():
    topics = granted(ResourceType.TOPIC)
    published = {*OWN_TOPIC.values(), CONNECT_HEARTBEATS}

    assert {name for name, operation in topics if operation == Operation.WRITE} == published | set(CONNECT_STATE_TOPICS)
    assert {name for name, operation in topics if operation == Operation.READ} == set(CONNECT_STATE_TOPICS)
    assert not any(name.endswith(".DLT") for name, _ in topics)


def test_connect_uses_its_own_group_only_and_no_cluster_or_transactional_resource():
    assert granted(ResourceType.GROUP) == {(CONNECT_GROUP, Operation.READ)}
    assert {acl.resource_type for acl in connect_acls()} == {ResourceType.TOPIC, ResourceType.GROUP}
    assert all(acl.principal == "User:connect" for acl in connect_acls())


def test_provisioning_grants_connect_nothing_so_the_builtin_relay_runs_with_no_other_writer():
    assert "connect" not in OTHER_PRINCIPALS  # connectors.py provision grants it, under RELAY=debezium
