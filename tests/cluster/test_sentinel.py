"""Redis Sentinel with real processes on free ports: a primary, a replica and three Sentinels
(quorum 2). The primary is killed (SIGKILL); the Sentinels promote the replica, and a client made
by ``redis_client`` carries on writing to the new primary, with what was written before the
failure still there."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sessionserver.redisconn import parse_sentinels, redis_client
from tests.cluster.conftest import SERVICE, Sentinels

pytestmark = pytest.mark.timeout(90)


async def write(client: aioredis.Redis, key: str, value: int, timeout_s: float) -> float:
    """Write until it succeeds (the caller's retry on a Redis outage); how long it took."""
    started = time.monotonic()
    while True:
        try:
            await client.set(key, value)
            return time.monotonic() - started
        except (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError):
            if time.monotonic() - started > timeout_s:
                raise
            await asyncio.sleep(0.05)  # the retry's pace while the Sentinels fail over


async def test_writes_go_on_after_the_primary_is_killed(sentinels: Sentinels) -> None:
    primary = sentinels.primary
    client = redis_client("", sentinels.hosts, SERVICE)
    try:
        await write(client, "before", 1, timeout_s=15)  # the Sentinels have found the primary
        for i in range(50):
            await client.set(f"k{i}", i)
        deadline = time.monotonic() + 20
        while await client.wait(1, 1000) < 1:  # until the replica has it all (its first sync takes a moment)
            assert time.monotonic() < deadline, "the replica never caught up"
        os.kill(primary.pid, signal.SIGKILL)
        primary.wait()
        took = await write(client, "after", 2, timeout_s=30)
        assert int(await client.get("before")) == 1 and int(await client.get("k49")) == 49
        assert int(await client.get("after")) == 2
        role = await client.execute_command("ROLE")  # type: ignore[no-untyped-call]
        assert role[0] in (b"master", "master")
        print(f"writes resumed {took:.2f} s after the primary was killed")
    finally:
        await client.aclose()


def test_sentinel_addresses_are_checked() -> None:
    assert parse_sentinels("a:1, b:26379,") == [("a", 1), ("b", 26379)]
    for bad in ("a", "a:", ":1", "a:0", "a:70000", "a:²"):
        with pytest.raises(ValueError, match="host:port"):
            parse_sentinels(bad)
