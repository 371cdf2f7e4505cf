"""The topics on the running cluster are the ones shared/events/topics.py specifies, and provisioning
creates what is missing, leaves what is right alone and refuses what has drifted."""

import dataclasses

import pytest
from shared.events.topics import DLT_SUFFIX, TOPIC_SPECS, TopicSpec
from shared.kafka.provisioning import TopicMismatch, describe_topic_settings, ensure_topics

pytestmark = pytest.mark.infra

SPECS = {spec.name: spec for spec in TOPIC_SPECS}


@pytest.fixture(scope="module")
async def provisioned(kafka_admin) -> dict[str, dict]:
    """The live settings of every spec'd topic, read once."""
    return await describe_topic_settings(kafka_admin, list(SPECS))


def test_there_are_six_topics_three_event_topics_and_their_dead_letter_topics():
    names = set(SPECS)
    assert names == {"order-events", "payment-events", "inventory-events"} | {
        f"{topic}{DLT_SUFFIX}" for topic in ("order-events", "payment-events", "inventory-events")
    }


@pytest.mark.parametrize("name", list(SPECS))
def test_a_topic_has_the_partitions_of_its_spec(provisioned, name):
    assert provisioned[name]["partitions"] == SPECS[name].partitions


@pytest.mark.parametrize("name", list(SPECS))
def test_a_topic_has_the_replication_factor_of_its_spec(provisioned, name):
    assert provisioned[name]["replication_factor"] == SPECS[name].replication_factor


@pytest.mark.parametrize("name", list(SPECS))
def test_a_topic_has_the_retention_of_its_spec(provisioned, name):
    assert provisioned[name]["config"]["retention.ms"] == SPECS[name].config["retention.ms"]


@pytest.mark.parametrize("name", list(SPECS))
def test_a_topic_has_the_min_insync_replicas_of_its_spec(provisioned, name):
    assert provisioned[name]["config"]["min.insync.replicas"] == SPECS[name].config["min.insync.replicas"]


@pytest.mark.parametrize("name", list(SPECS))
async def test_every_partition_of_a_topic_is_replicated_on_distinct_brokers(kafka_admin, name):
    (topic,) = await kafka_admin.describe_topics([name])
    for partition in topic["partitions"]:
        assert len(set(partition["replicas"])) == SPECS[name].replication_factor


async def test_ensure_topics_on_the_provisioned_cluster_creates_nothing_and_finds_no_drift(
    healthy_cluster, admin_kafka
):
    first = await ensure_topics(admin_kafka)
    second = await ensure_topics(admin_kafka)

    for report in (first, second):
        assert report.created == []
        assert sorted(report.existing) == sorted(SPECS)
        assert report.mismatches == []


async def test_ensure_topics_creates_a_missing_topic_once_and_finds_it_the_second_time(
    healthy_cluster, admin_kafka, unique_topic_name, topic_cleanup
):
    spec = dataclasses.replace(SPECS["order-events"], name=unique_topic_name, partitions=3)
    try:
        first = await ensure_topics(admin_kafka, [spec])
        second = await ensure_topics(admin_kafka, [spec])
        settings = (await describe_topic_settings(healthy_cluster, [spec.name]))[spec.name]
    finally:
        await topic_cleanup(healthy_cluster, [unique_topic_name])

    assert (first.created, first.existing) == ([spec.name], [])
    assert (second.created, second.existing, second.mismatches) == ([], [spec.name], [])
    assert (settings["partitions"], settings["replication_factor"]) == (3, 3)
    assert settings["config"]["retention.ms"] == spec.config["retention.ms"]


DRIFTS = {
    "fewer partitions": ({"partitions": 2}, "2 partitions, expected 3"),
    "lower replication factor": ({"replication_factor": 2}, "replication factor 2, expected 3"),
    "shorter retention": ({"retention.ms": "3600000"}, "retention.ms=3600000, expected 604800000"),
    "lower min ISR": ({"min.insync.replicas": "1"}, "min.insync.replicas=1, expected 2"),
}


@pytest.mark.parametrize("drift", list(DRIFTS))
async def test_a_topic_that_exists_with_other_settings_is_reported_as_a_mismatch(
    healthy_cluster, admin_kafka, scratch_topics, drift
):
    changes, problem = DRIFTS[drift]
    expected = TopicSpec(
        name="",
        partitions=3,
        replication_factor=3,
        config={"retention.ms": "604800000", "min.insync.replicas": "2", "cleanup.policy": "delete"},
    )
    name = await scratch_topics(
        partitions=changes.get("partitions", expected.partitions),
        replication_factor=changes.get("replication_factor", expected.replication_factor),
        config={k: changes.get(k, v) for k, v in expected.config.items()},
    )
    spec = dataclasses.replace(expected, name=name)

    with pytest.raises(TopicMismatch, match=f"{name}: {problem}"):
        await ensure_topics(admin_kafka, [spec])

    report = await ensure_topics(admin_kafka, [spec], strict=False)
    assert report.mismatches == [f"{name}: {problem}"]
    assert report.created == []


async def test_ensure_topics_with_a_leader_creates_every_partition_led_by_that_broker_and_replicated_three_times(
    healthy_cluster, admin_kafka, unique_topic_name, topic_cleanup
):
    spec = dataclasses.replace(SPECS["order-events"], name=unique_topic_name, partitions=4)
    try:
        report = await ensure_topics(admin_kafka, [spec], leader=2)
        (topic,) = await healthy_cluster.describe_topics([spec.name])
    finally:
        await topic_cleanup(healthy_cluster, [unique_topic_name])

    assert report.created == [spec.name]
    partitions = sorted(topic["partitions"], key=lambda p: p["partition"])
    assert [p["leader"] for p in partitions] == [2, 2, 2, 2]
    assert [p["replicas"] for p in partitions] == [[2, 1, 3], [2, 3, 1], [2, 1, 3], [2, 3, 1]]
