"""``wire`` is a distribution of its own: installed alone into an empty virtual environment it
brings msgpack and nothing of the server, and it speaks the protocol there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.util, json
from importlib.metadata import distributions
import wire
import wire.session
from wire import messages as m
frame = wire.encode(m.Ping(42))
assert wire.decode_frame(frame, wire.Limits()) == m.Ping(42)
for name in ("sessionserver", "recordings", "matcher", "aiortc", "redis", "starlette", "numpy", "scipy"):
    assert importlib.util.find_spec(name) is None, name
print(json.dumps(sorted(d.metadata["Name"].lower() for d in distributions())))
"""


@pytest.mark.timeout(300)
def test_wire_installs_and_runs_alone(tmp_path: Path) -> None:
    source = tmp_path / "wire"  # a copy, so that the build leaves nothing in the repository
    shutil.copytree(ROOT / "wire", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
                   check=True, capture_output=True, timeout=240)
    out = subprocess.run([python, "-c", PROBE], check=True, capture_output=True, text=True, cwd=tmp_path,
                         timeout=60)
    installed = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert {"tutorwire-wire", "msgpack"} <= installed
    assert installed - {"tutorwire-wire", "msgpack", "pip", "setuptools", "wheel"} == set(), sys.version
