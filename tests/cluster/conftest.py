"""Redis Sentinel for the cluster tests: a primary, a replica and three Sentinels (quorum 2) as real
``redis-server`` processes on free ports, in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVICE = "tw-test"


@dataclass
class Sentinels:
    primary: subprocess.Popen[bytes]
    hosts: str  # "127.0.0.1:port,..." of the Sentinels


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
def sentinels(tmp_path: Path) -> Iterator[Sentinels]:
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
        yield Sentinels(procs[0], ",".join(f"127.0.0.1:{p}" for p in sentinel_ports))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


