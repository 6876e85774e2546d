"""The browser's session machine (``web_client/js/wire/session/``) and its I/O shell
(``connection.js``), under Node's test runner: ``tests/web_client/web_session.test.mjs`` steps time by hand
through the states, the backoff, the timers, resume, pacing, the in-flight window and rights."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TESTS = Path(__file__).with_name("web_session.test.mjs")


def test_the_browser_session_machine() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed, so the browser's session machine cannot be run")
    done = subprocess.run([node, "--test", str(TESTS)], capture_output=True, text=True, timeout=60,
                          cwd=TESTS.parent.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout, done.stdout
