"""``compose.yaml`` read as Docker Compose would (CI has no Docker daemon to run it): two nodes of
the image, Redis and the proxy, each with a health check; the proxy runs Debian's HAProxy on the
repository's ``deploy/haproxy/haproxy.cfg`` (checked by ``haproxy -c`` where HAProxy is
installed), which routes to the ports and node ids the nodes are given; and each node's
environment is one the server accepts (``Settings.from_env``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sessionserver.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def substituted(value: str, env: dict[str, str]) -> str:
    """``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}`` as Compose expands them."""
    def one(match: re.Match[str]) -> str:
        name, rest = match.group(1), match.group(0)
        if name in env:
            return env[name]
        if ":?" in rest:
            raise KeyError(f"{name} must be set: {match.group(2)}")
        return match.group(2) or ""

    return VARIABLE.sub(one, value)


def nodes() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in SERVICES.items() if s.get("image", "").startswith("tutorwire")}


def node_env(service: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    env = {"TUTORWIRE_SECRET": "compose-test-secret"} if env is None else env
    return {k: substituted(str(v), env) for k, v in service["environment"].items()}


def test_two_nodes_of_the_image_redis_and_the_proxy_each_with_a_health_check() -> None:
    assert set(SERVICES) == {"redis", "n1", "n2", "proxy"}
    assert sorted(nodes()) == ["n1", "n2"]
    for name, service in SERVICES.items():
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and len(test) > 1, name
    for service in nodes().values():
        assert service["build"] == "." and service["command"] == ["tutorwire", "serve"]  # the Dockerfile's CMD
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        port = node_env(service)["TUTORWIRE_PORT"]
        assert f"127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
    assert {n: SERVICES["proxy"]["depends_on"][n]["condition"] for n in nodes()} == {
        "n1": "service_healthy", "n2": "service_healthy"}


def test_the_nodes_share_redis_and_the_secret_and_each_has_its_own_id_url_and_recordings() -> None:
    envs = {name: node_env(s) for name, s in nodes().items()}
    redis_cmd = SERVICES["redis"]["command"]
    redis_port = redis_cmd[redis_cmd.index("--port") + 1]
    for name, env in envs.items():
        settings = Settings.from_env(env)  # names and values the server accepts
        assert settings.redis_url == f"redis://127.0.0.1:{redis_port}/0"
        assert settings.node_id == name and settings.node_url.endswith(f"/?node={name}")
        assert settings.secret == "compose-test-secret" and settings.metrics_networks == ""
    assert len({e["TUTORWIRE_PORT"] for e in envs.values()}) == 2
    volumes = [v for s in nodes().values() for v in s["volumes"]]
    assert len(set(volumes)) == 2 and all(v.endswith(":/data/recordings") for v in volumes)
    with pytest.raises(KeyError, match="TUTORWIRE_SECRET must be set"):
        node_env(SERVICES["n1"], {})  # no default secret: every node must get the same one


def test_the_proxy_runs_debians_haproxy_on_the_repositorys_config_routing_to_the_nodes() -> None:
    proxy = SERVICES["proxy"]
    assert "./deploy/haproxy/haproxy.cfg:/etc/haproxy/haproxy.cfg:ro" in proxy["volumes"]
    build = proxy["build"]["dockerfile_inline"]
    assert "FROM debian:" in build and "apt-get install" in build and "haproxy" in build
    assert "/etc/haproxy/haproxy.cfg" in build and "USER haproxy" in build
    cfg = HAPROXY_CFG.read_text()
    servers = dict(re.findall(r"^\s*server (\S+) 127\.0\.0\.1:(\d+)", cfg, re.M))
    routed = set(re.findall(r"use-server (\S+) if \{ urlp\(node\) -m str (\S+) \}", cfg))
    bind = re.search(r"^\s*bind 127\.0\.0\.1:(\d+)", cfg, re.M)
    assert bind is not None
    for name, service in nodes().items():
        env = node_env(service)
        assert servers[name] == env["TUTORWIRE_PORT"]  # the proxy reaches the node where it listens
        assert (name, name) in routed  # and follows the ?node= of the URLs the node hands out
        assert env["TUTORWIRE_NODE_URL"] == f"http://127.0.0.1:{bind.group(1)}/?node={name}"
    assert all(s.get("network_mode") == "host" for s in SERVICES.values())  # the config's 127.0.0.1 addresses


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed (apt-get install haproxy)")
def test_haproxy_accepts_the_mounted_config() -> None:
    done = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
