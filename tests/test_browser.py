"""Runs the browser tests (tests/browser/) inside a private network namespace.

Inside ``unshare -n`` only a loopback interface exists, so the kernel guarantees that Chromium's
WebRTC and everything else stays on 127.0.0.1 (the system Redis is out of reach too: the server
runs on its embedded store). This test is how the ordinary ``pytest`` run reaches them: it fails,
with the inner run's whole output, when any browser test fails.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
RUN_TIMEOUT_S = 480  # the whole browser run (about 190 s alone here); each test has its own, shorter timeout


@pytest.mark.timeout(RUN_TIMEOUT_S + 20)
def test_browser_suite_in_a_private_network_namespace() -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed: the browser tests need a private network namespace")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/setup-env test installs Debian's chromium")
    # As root a plain network namespace; otherwise map ourselves to root in a user namespace.
    flags = "-n" if os.geteuid() == 0 else "-rn"
    inner = [sys.executable, "-m", "pytest", "tests/browser", "-q", "-p", "no:cacheprovider",
             *shlex.split(os.environ.get("TUTORWIRE_BROWSER_PYTEST_ARGS", ""))]
    script = "ip link set lo up && exec " + shlex.join(inner)
    env = {**os.environ, "TUTORWIRE_IN_NETNS": "1"}
    proc = subprocess.Popen([unshare, flags, "sh", "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    timer = threading.Timer(RUN_TIMEOUT_S, proc.kill)
    timer.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # streamed: visible with -s, and kept for the failure message
            sys.stdout.write(line)
            lines.append(line)
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines)
    if code == 5 or (code == 0 and " passed" not in output):
        pytest.fail(f"the browser run collected no test (exit {code}):\n{output}", pytrace=False)
    if code != 0:
        why = "timed out and was killed" if code < 0 else f"exited {code}"
        pytest.fail(f"the browser tests in the network namespace {why}:\n{output}", pytrace=False)
