"""The disposable cluster's own helper: a random cluster id the storage tool can always take."""

from disposable_kafka import new_cluster_id


def test_a_new_cluster_id_never_starts_with_a_dash_which_the_storage_tool_would_read_as_an_option():
    ids = [new_cluster_id() for _ in range(5000)]  # unfiltered, about 78 of them would start with "-"
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert {len(cluster_id) for cluster_id in ids} == {22}
    assert len(set(ids)) == len(ids)
