"""What only the PostgreSQL store does for partitioned workers (monitor.cluster): a
store scoped to one partition keeps its posts, checkpoint and stream position apart
from the other partitions', fenced by the partition's lease."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from monitor.errors import LeaseLost
from tests.timeline import T0, post


def test_a_partition_store_keeps_its_posts_checkpoint_and_position_apart(
        pg_dsn: str) -> None:
    from monitor.store.postgres import PostgresStore

    main = PostgresStore(pg_dsn)
    one, two = main.scoped(1), main.scoped(2)
    try:
        assert one.add_post(post(1, T0), "Acme", 0.0, "neutral")
        # the same post for another partition (a post about brands of both): kept twice
        assert two.add_posts([(post(1, T0), "Globex", 0.0, "neutral"),
                              (post(2, T0), "Globex", 0.0, "neutral")], T0) == [True, True]
        assert not one.add_post(post(1, T0), "Acme", 0.0, "neutral")  # a duplicate there
        assert [s.post.id for s in one.posts_after(0)] == ["1"]
        assert [s.post.id for s in two.posts_after(0)] == ["1", "2"]
        assert one.last_seq() < two.last_seq()
        one.set_checkpoint_seq(one.last_seq())
        assert one.checkpoint_seq() == one.last_seq() and two.checkpoint_seq() == 0
        assert main.checkpoint_seq() == 0  # the single-process checkpoint is apart
        with two.transaction():
            two.set_stream_seq(41)
        two.set_stream_seq(40)  # never backwards
        assert two.stream_seq() == 41 and one.stream_seq() == 0
        assert main.post_count() == 3
    finally:
        for store in (one, two, main):
            store.close()


def test_a_partition_store_stops_writing_when_its_lease_moves(pg_dsn: str) -> None:
    from monitor.store.postgres import PostgresStore

    main = PostgresStore(pg_dsn)
    store = main.scoped(3)
    try:
        lease = main.acquire_lease("part/3", "w1", T0, timedelta(seconds=4))
        store.fence(lease)
        with store.transaction():
            store.set_stream_seq(5)
        assert main.acquire_lease("part/3", "w2", T0 + timedelta(seconds=5),
                                  timedelta(seconds=4)) is not None
        with pytest.raises(LeaseLost), store.transaction():
            store.set_stream_seq(9)
        assert store.stream_seq() == 5
    finally:
        store.close()
        main.close()


def test_cluster_settings_are_checked(tmp_path: Any) -> None:
    from monitor.cluster.node import cluster_of
    from monitor.config.schema import BrandConfig, ClusterConfig, Config, StorageConfig
    from monitor.errors import BrandMonitorError

    base = Config(brands=(BrandConfig(name="Acme", keywords=("acme",)),))
    with pytest.raises(BrandMonitorError, match=r"cluster\.nats_url"):
        cluster_of(base, "worker")
    with pytest.raises(BrandMonitorError, match=r"storage\.backend: postgres"):
        cluster_of(base.__class__(brands=base.brands,
                                  cluster=ClusterConfig(nats_url="nats://127.0.0.1:1")),
                   "ingest")
    ok = Config(brands=base.brands, storage=StorageConfig(backend="postgres", dsn="x"),
                cluster=ClusterConfig(nats_url="nats://127.0.0.1:1"))
    assert cluster_of(ok, "notify").partitions == 16
