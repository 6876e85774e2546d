"""Several real ``tutorwire serve --node-id`` processes on free ports, on one Redis under a prefix of
their own (removed afterwards): what the multi-node tests and bench/multinode.py run."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.servers import free_port
from wire import Role

TUTORWIRE = os.path.join(os.path.dirname(sys.executable), "tutorwire")
REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = "cluster-test-secret-of-at-least-32-bytes"


@dataclass
class Node:
    node_id: str
    port: int
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, session: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/session/{session}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, no registry leave."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@dataclass
class Cluster:
    nodes: list[Node]
    prefix: str
    redis_url: str
    env: dict[str, str]
    recordings: Path  # the nodes' recordings (one folder each, n1..., unless shared)

    def node_of(self, url: str) -> Node:
        return next(n for n in self.nodes if f":{n.port}/" in url)

    def urls(self, session: str) -> list[str]:
        return [n.ws(session) for n in self.nodes]

    def token(self, session: str, role: Role, user: str = "", ttl: int = 600) -> str:
        from sessionserver.auth import TokenSigner

        return TokenSigner(SECRET).mint(session, user or role.label, role, int(time.time()) + ttl)


def start_node(node_id: str, env: dict[str, str], port: int | None = None, node_url: str = "") -> Node:
    port = port or free_port()
    proc = subprocess.Popen([TUTORWIRE, "serve", "--dev", "--node-id", node_id, "--port", str(port)],
                            env=env | {"TUTORWIRE_NODE_URL": node_url or f"http://127.0.0.1:{port}"},
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    node = Node(node_id, port, proc)
    assert proc.stderr is not None
    for line in proc.stderr:  # uvicorn says when it listens
        node.log.append(line)
        if "Uvicorn running on" in line:
            break
    else:
        raise RuntimeError(f"node {node_id} exited with {proc.wait()}: {''.join(node.log)[-2000:]}")
    stderr = proc.stderr

    def pump() -> None:  # keep reading, or a chatty node blocks on a full pipe
        for line in stderr:
            node.log.append(line)

    threading.Thread(target=pump, daemon=True).start()
    return node


@contextmanager
def cluster(count: int = 3, redis_url: str = REDIS_URL, extra: dict[str, str] | None = None,
            ports: list[int] | None = None, node_url: Callable[[str, int], str] | None = None,
            shared_recordings: bool = False) -> Iterator[Cluster]:
    """``count`` nodes (on ``ports`` if given) announcing ``node_url(id, port)`` (default their
    own address), recording each in a folder of its own or all in one (``shared_recordings``)."""
    prefix = f"tw-nodes-{secrets.token_hex(5)}:"
    recordings = tempfile.TemporaryDirectory(prefix="tutorwire-nodes-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORWIRE_")}
    env |= {"TUTORWIRE_REDIS_URL": redis_url, "TUTORWIRE_REDIS_PREFIX": prefix, "TUTORWIRE_SECRET": SECRET,
            "TUTORWIRE_LOG_LEVEL": "info", "TUTORWIRE_MATCHER_WORKER": "0",
            # three nodes and their clients share two cores here: shedding would refuse the tests' joins
            "TUTORWIRE_OVERLOAD_CPU": "0", "TUTORWIRE_OVERLOAD_LAG_MS": "0"} | (extra or {})
    nodes = []
    try:
        for i in range(count):
            folder = recordings.name if shared_recordings else os.path.join(recordings.name, f"n{i + 1}")
            node_env = env | {"TUTORWIRE_RECORDINGS_DIR": folder}
            node_id, port = f"n{i + 1}", ports[i] if ports else free_port()
            nodes.append(start_node(node_id, node_env, port, node_url(node_id, port) if node_url else ""))
        yield Cluster(nodes, prefix, redis_url, env, Path(recordings.name))
    finally:
        for node in nodes:
            if node.alive:
                node.proc.terminate()
        for node in nodes:
            try:
                node.proc.wait(10)
            except subprocess.TimeoutExpired:
                node.kill()
        if redis_url:  # (through Sentinels the caller's temporary Redis goes with its processes)
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=prefix + "*"))
            if keys:
                client.delete(*keys)
            client.close()
        recordings.cleanup()
