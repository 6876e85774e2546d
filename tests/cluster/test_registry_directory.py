"""The node registry, the room directory and placement on a real Redis (own key prefix, cleaned
up): liveness judged by Redis's clock against the time passed in, one owner per room however
many nodes race for it, a dead node's rooms taken over exactly once, and placement that every
node computes the same."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sessionserver.cluster import NodeLoad, NodeRegistry, RoomDirectory, choose_node

REDIS_URL = "redis://127.0.0.1:6379/0"  # the machine's Redis; keys under a prefix of this test's own


@pytest.fixture
async def redis() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    client = aioredis.Redis.from_url(REDIS_URL)
    prefix = f"tw-cluster-{secrets.token_hex(6)}:"
    try:
        yield client, prefix
    finally:
        async for key in client.scan_iter(match=prefix + "*"):
            await client.delete(key)
        await client.aclose()


def load(node: str, at: float, cpu: float = 0.2, participants: int = 10) -> NodeLoad:
    return NodeLoad(node, f"ws://127.0.0.1:{8000 + int(node[-1])}", 3, participants, cpu, 1.5, at)


async def test_nodes_announce_and_a_silent_one_is_dead_after_the_timeout(redis: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis
    registry = NodeRegistry(client, prefix, dead_after_s=6.0)
    now = await registry.now()
    assert abs(now - time.time()) < 5  # Redis's clock, close to ours on one machine
    await registry.announce(load("n1", now))
    await registry.announce(load("n2", now - 5.0))
    await registry.announce(load("n3", now - 7.0))
    assert [n.node_id for n in await registry.live(now)] == ["n1", "n2"]
    assert [n.node_id for n in await registry.dead(now)] == ["n3"]
    assert [n.node_id for n in await registry.live(now + 1.5)] == ["n1"]  # n2 silent past 6 s
    await client.hset(prefix + "nodes", "garbage", b"\xc1not msgpack")  # type: ignore[misc, arg-type]
    assert [n.node_id for n in await registry.nodes()] == ["n1", "n2", "n3"]
    await registry.leave("n1")
    assert [n.node_id for n in await registry.live(now)] == ["n2"]
    await registry.announce(load("n4", now - 7200))
    await registry.live(now)  # an entry dead for an hour is forgotten by the reader
    assert "n4" not in [n.node_id for n in await registry.nodes()]


async def test_one_owner_per_room_however_many_nodes_claim_it(redis: tuple[aioredis.Redis, str]) -> None:
    _, prefix = redis
    nodes = [RoomDirectory(aioredis.Redis.from_url(REDIS_URL), prefix) for _ in range(5)]
    try:
        for room in range(20):
            owners = await asyncio.gather(*(d.claim(f"room-{room}", f"n{i}") for i, d in enumerate(nodes)))
            assert len(set(owners)) == 1  # every claimant hears of the same one
            assert await nodes[0].owner(f"room-{room}") == owners[0]
        spread = {n: await nodes[0].rooms_of(n) for n in (f"n{i}" for i in range(5))}
        assert sorted(r for rooms in spread.values() for r in rooms) == sorted(f"room-{i}" for i in range(20))
    finally:
        for d in nodes:
            await d.redis.aclose()


async def test_a_dead_nodes_rooms_are_taken_over_exactly_once(redis: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis
    directory = RoomDirectory(client, prefix)
    for room in ("a", "b", "c"):
        assert await directory.claim(room, "dead") == "dead"
    results = await asyncio.gather(*(directory.take_over(room, "dead", f"n{i}")
                                     for room in ("a", "b", "c") for i in (1, 2)))
    assert sum(results) == 3  # each room moved once, whoever raced
    assert await directory.rooms_of("dead") == []
    owners = {room: await directory.owner(room) for room in ("a", "b", "c")}
    assert set(owners.values()) <= {"n1", "n2"}
    assert not await directory.release("a", "not-the-owner") and await directory.owner("a") is not None
    assert await directory.release("a", str(owners["a"])) and await directory.owner("a") is None
    assert await directory.claim("a", "n3") == "n3"


def test_placement_picks_the_least_loaded_live_node_under_the_thresholds() -> None:
    now = 1000.0
    nodes = [load("n1", now, cpu=0.5), load("n2", now, cpu=0.2, participants=40), load("n3", now - 10, cpu=0.0),
             load("n4", now, cpu=0.2, participants=30), load("n5", now, cpu=0.95)]
    chosen = choose_node(nodes, now, dead_after_s=6, max_cpu=0.85, max_participants=5000)
    assert chosen is not None and chosen.node_id == "n4"  # n3 is dead; n4 ties n2 on CPU, fewer people
    assert choose_node(nodes, now, 6, max_cpu=0.85, max_participants=35).node_id == "n4"  # type: ignore[union-attr]
    assert choose_node(nodes, now, 6, max_cpu=0.1, max_participants=5000) is None  # all busy: "retry"
    assert NodeLoad.from_wire(nodes[0].to_wire()) == nodes[0]
