"""Redis Sentinel with real processes on free ports: a primary, a replica and three Sentinels
(quorum 2). The primary is killed (SIGKILL); the Sentinels promote the replica, and a client made
by ``redis_client`` carries on writing to the new primary, with what was written before the
failure still there."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sessionserver.redisconn import parse_sentinels, redis_client

pytestmark = pytest.mark.timeout(90)
SERVICE = "tw-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["redis-server", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)  # a process starting: nothing to await but its port
    raise TimeoutError(f"nothing listens on {port}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    procs: list[subprocess.Popen[bytes]] = []
    primary_port, replica_port = free_port(), free_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    for name, port, extra in (("primary", primary_port, []),
                              ("replica", replica_port, ["--replicaof", "127.0.0.1", str(primary_port)])):
        folder = tmp_path / name
        folder.mkdir()
        procs.append(start(["--port", str(port), "--dir", str(folder), *common, *extra], folder))
        wait_port(port)
    sentinel_ports = [free_port() for _ in range(3)]
    for i, port in enumerate(sentinel_ports):
        folder = tmp_path / f"sentinel-{i}"
        folder.mkdir()
        conf = folder / "sentinel.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                        f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n"
                        f"sentinel down-after-milliseconds {SERVICE} 500\n"
                        f"sentinel failover-timeout {SERVICE} 3000\n"
                        f"sentinel parallel-syncs {SERVICE} 1\n")
        procs.append(subprocess.Popen(["redis-server", str(conf), "--sentinel"], cwd=folder,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(port)
    try:
        yield procs[0], ",".join(f"127.0.0.1:{p}" for p in sentinel_ports)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


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


async def test_writes_go_on_after_the_primary_is_killed(cluster: tuple[subprocess.Popen[bytes], str]) -> None:
    primary, sentinels = cluster
    client = redis_client("", sentinels, SERVICE)
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
