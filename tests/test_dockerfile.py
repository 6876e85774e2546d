"""The container is built from the README's install steps: the same packages copied and installed
(no extras, as ``scripts/serve`` installs), the same system library, the same entry point, a user
that is not root, and a health check on ``/healthz``. Read from the files, so that a change to one
and not the other fails here (building the image needs Docker, which CI does not have)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
SERVE = (ROOT / "scripts" / "serve").read_text()
SETUP = (ROOT / "scripts" / "setup-env").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every ``name`` instruction (continuation lines joined)."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def test_every_package_is_copied_and_installed_as_the_serve_command_installs_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = {c.split()[0] for c in instructions("COPY")}
    assert set(packages) | {"wire", "web_client"} <= copied, sorted(set(packages) - copied)
    installs = [r for r in instructions("RUN") if "pip install" in r]
    assert len(installs) == 1 and re.search(r"pip install [^&]*\./wire \.(\s|$)", installs[0]), installs
    assert 'source "$(dirname "$0")/setup-env" ""' in SERVE  # the serve command: no extras either
    assert "libopus0" in SETUP and any("libopus0" in r for r in instructions("RUN"))


def test_it_runs_the_same_entry_point_as_a_user_that_is_not_root_with_a_health_check() -> None:
    assert instructions("CMD") == ['["tutorwire", "serve"]'] and "exec .venv/bin/tutorwire serve" in SERVE
    users = instructions("USER")
    assert users and users[-1] not in ("root", "0")
    health = instructions("HEALTHCHECK")
    assert len(health) == 1 and "/healthz" in health[0]
