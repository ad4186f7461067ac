"""Partition ownership among replicas (the base of step 2's publisher): every partition has
exactly one owner among the live replicas, shares are fair, and a replica that goes away loses
its partitions to the others at their next rebalance."""

from __future__ import annotations

import asyncio
import math
import time

import asyncpg

from receiver.storage.engine import PostgresUrl
from receiver.storage.partitions import PARTITIONS
from receiver.storage.postgres.ownership import (
    CONFIRM_SECONDS,
    CONFIRM_TIMEOUT,
    OWNER_APPLICATION,
    PartitionOwnership,
)
from testbed.postgres import PostgresCluster
from tests.support.helpers import eventually


async def _rounds(owners: list[PartitionOwnership], rounds: int = 3) -> None:
    for _ in range(rounds):
        for owner in owners:
            await owner.rebalance()


def _check_split(owners: list[PartitionOwnership]) -> None:
    held = [owner.owned for owner in owners]
    assert sum(len(h) for h in held) == PARTITIONS  # no partition twice
    assert frozenset().union(*held) == frozenset(range(PARTITIONS))  # none without an owner
    assert max(len(h) for h in held) <= math.ceil(PARTITIONS / len(owners))


async def test_replicas_split_the_partitions_and_take_over_from_one_that_leaves(
    pg_url: str,
) -> None:
    url = PostgresUrl(pg_url)
    changes: list[frozenset[int]] = []
    owners = [PartitionOwnership(url, on_change=changes.append)]
    owners += [PartitionOwnership(url) for _ in range(2)]
    try:
        await owners[0].rebalance()
        assert owners[0].owned == frozenset(range(PARTITIONS))  # alone: everything

        await _rounds(owners)  # two more replicas start
        _check_split(owners)

        gone = owners.pop(1)
        await gone.close()  # its session ends: its locks are free
        await _rounds(owners)
        _check_split(owners)
        assert changes[0] == frozenset(range(PARTITIONS))
        assert changes[-1] == owners[0].owned
    finally:
        for owner in owners:
            await owner.close()


async def test_a_lost_session_owns_nothing_at_once(pg_url: str) -> None:
    # The database ended the session (a restart, a network cut seen by the server): its locks
    # are gone, so the replica must stop believing it owns anything before it reconnects.
    owner = PartitionOwnership(PostgresUrl(pg_url))
    other = await asyncpg.connect(pg_url)
    try:
        await owner.rebalance()
        assert len(owner.owned) == PARTITIONS
        await other.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            OWNER_APPLICATION,
        )
        await eventually(lambda: owner.owned == frozenset(), what="the partitions are dropped")
        await owner.rebalance()  # reconnects and takes them again
        assert len(owner.owned) == PARTITIONS
    finally:
        await other.close()
        await owner.close()


async def test_the_background_loop_rebalances_by_itself(pg_url: str) -> None:
    url = PostgresUrl(pg_url)
    owners = [PartitionOwnership(url, interval=0.05) for _ in range(2)]
    try:
        for owner in owners:
            owner.start()
        await eventually(
            lambda: sorted(len(o.owned) for o in owners) == [PARTITIONS // 2] * 2,
            what="an even split",
        )
        _check_split(owners)
    finally:
        await asyncio.gather(*(owner.close() for owner in owners))


async def test_a_session_that_stops_answering_gives_up_its_partitions(
    pg_url: str, postgres: PostgresCluster
) -> None:
    # Cut off from the database, a publisher must stop before the server frees its locks for
    # another replica: it asks its session before each batch and drops everything if it is
    # silent.
    owner = PartitionOwnership(PostgresUrl(pg_url))
    try:
        await owner.rebalance()
        assert await owner.confirm(time.monotonic())
        postgres.pause()
        try:
            started = time.monotonic()
            assert not await owner.confirm(started + CONFIRM_SECONDS)
            assert time.monotonic() - started < CONFIRM_TIMEOUT + 1
            assert owner.owned == frozenset()
        finally:
            postgres.resume()
        await owner.rebalance()
        assert len(owner.owned) == PARTITIONS
    finally:
        await owner.close()
