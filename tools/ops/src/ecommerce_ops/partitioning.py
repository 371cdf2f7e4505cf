"""Which partition a key's records are in: what the producers compute, computed here again so that
a reader goes straight to the one partition of each topic that holds an order's events."""

from aiokafka.partitioner import murmur2


def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition aiokafka's DefaultPartitioner (and Kafka's Java client, for a keyed record)
    picks for `key` among `partitions`: murmur2 of the key's bytes, made positive, modulo the count.
    Every relay uses that partitioner, and every saga event is keyed by its order id."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    data = key.encode() if isinstance(key, str) else key
    hashed: int = murmur2(data)
    return (hashed & 0x7FFFFFFF) % partitions
