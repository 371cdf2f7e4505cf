"""The operator CLI finds an order's records in one partition of each topic: the one the producers
chose. It must compute exactly what aiokafka's default partitioner computes."""

import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner
from ecommerce_ops.partitioning import partition_for


@pytest.mark.parametrize("partitions", [1, 2, 3, 12, 13, 64])
def test_the_partition_of_a_key_is_the_one_aiokafkas_default_partitioner_picks(partitions: int) -> None:
    every = list(range(partitions))
    for key in [str(uuid.uuid4()) for _ in range(500)] + ["", "a", "SKU-1", "é-ünïcode"]:
        assert partition_for(key, partitions) == DefaultPartitioner()(key.encode(), every, every), key


def test_a_key_given_as_text_or_as_its_utf8_bytes_lands_in_the_same_partition() -> None:
    key = "0b6f6d4e-2f1c-4c1a-9d51-6c7a3e1f0a01"
    assert partition_for(key, 12) == partition_for(key.encode(), 12)


def test_a_topic_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for("key", 0)
