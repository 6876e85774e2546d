"""The browser's session machine (``web_client/js/wire/session/``) and its I/O shell
(``connection.js``), under Node's test runner: ``tests/web_client/web_session.test.mjs`` steps time by hand
through the states, the backoff, the timers, resume, pacing, the in-flight window and rights; and
``nav.test.mjs`` the sign-in page's redirect, confined to this site (``web_client/js/nav.js``); ``replaymodel.test.mjs``
the replay's ink through clears and their undo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.parametrize("suite", ["web_session.test.mjs", "nav.test.mjs", "netgrade.test.mjs", "replaymodel.test.mjs"])
def test_the_browser_modules_under_node(suite: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed, so the browser's modules cannot be run")
    done = subprocess.run([node, "--test", str(HERE / suite)], capture_output=True, text=True, timeout=60,
                          cwd=HERE.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout, done.stdout
