"""Where provisioning puts each partition's replicas when the leaders are to live on one broker."""

import pytest
from shared.events.topics import TopicSpec
from shared.kafka.provisioning import replica_assignment

SPEC = TopicSpec(name="order-events", partitions=12, replication_factor=3, config={})


def test_every_partition_has_the_chosen_broker_first_that_is_as_its_preferred_leader():
    assignment = replica_assignment(SPEC, [1, 2, 3], leader=2)
    assert sorted(assignment) == list(range(12))
    assert {replicas[0] for replicas in assignment.values()} == {2}


def test_every_partition_keeps_replication_factor_replicas_on_distinct_brokers():
    for replicas in replica_assignment(SPEC, [3, 1, 2], leader=1).values():
        assert sorted(replicas) == [1, 2, 3]


def test_the_other_brokers_take_turns_as_second_so_a_failed_leader_s_partitions_are_spread():
    seconds = [replicas[1] for replicas in replica_assignment(SPEC, [1, 2, 3], leader=1).values()]
    assert seconds.count(2) == seconds.count(3) == 6


def test_a_replication_factor_below_the_broker_count_takes_the_leader_and_the_next_in_turn():
    spec = TopicSpec(name="t", partitions=4, replication_factor=2, config={})
    assert replica_assignment(spec, [1, 2, 3], leader=3) == {0: [3, 1], 1: [3, 2], 2: [3, 1], 3: [3, 2]}


@pytest.mark.parametrize(
    ("brokers", "leader", "problem"),
    [([1, 2, 3], 4, "the leader broker 4 is not in the cluster"), ([1, 2], 1, "replication factor 3 > 2 brokers")],
)
def test_an_impossible_placement_is_refused_with_its_reason(brokers, leader, problem):
    with pytest.raises(ValueError, match=problem):
        replica_assignment(SPEC, brokers, leader)
