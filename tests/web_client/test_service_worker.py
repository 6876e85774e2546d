"""The pages' service worker (``/sw.js``, sessionserver/web.py): served at the root with the
pages' headers and scope ``/``, its shell lists every page and every script and style the pages
load, and its version follows the shell's contents (a deploy is a new cache)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx

from sessionserver.web import PAGES, default_web_root, service_worker, shell_files
from tests.conftest import RunningServer


async def test_the_service_worker_is_served_at_the_root(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://{server.base}") as http:
        r = await http.get("/sw.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["service-worker-allowed"] == "/"
    assert r.headers["cache-control"] == "no-cache"  # a new worker reaches every browser at once
    assert "default-src 'self'" in r.headers["content-security-policy"]
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", r.text).group(1))  # type: ignore[union-attr]
    assert set(PAGES) <= set(shell)
    for needed in ("/static/js/student.js", "/static/js/sessionview.js", "/static/js/relay.js", "/static/css/app.css",
                   "/static/vendor/msgpack/index.mjs"):
        assert needed in shell, needed
    assert "__VERSION__" not in r.text and "__SHELL__" not in r.text


def test_every_module_a_page_imports_is_in_the_shell() -> None:
    root = default_web_root()
    shell = set(shell_files(root))
    imports = re.compile(r"""(?:from|import)\s*\(?\s*["'](\.{1,2}/[^"']+|/static/[^"']+)["']""")
    for path in [*root.rglob("*.js"), *root.rglob("*.mjs")]:
        for spec in imports.findall(path.read_text()):
            url = spec if spec.startswith("/static/") else "/static/" + (path.parent / spec).resolve().relative_to(
                root.resolve()).as_posix()
            assert url in shell, f"{path.name} imports {spec}, which the offline shell lacks"


def test_the_version_follows_the_contents(tmp_path: Path) -> None:
    copy = tmp_path / "web_client"
    shutil.copytree(default_web_root(), copy)
    before = service_worker(copy)
    assert service_worker(copy) == before  # stable while nothing changes
    (copy / "css" / "app.css").write_text((copy / "css" / "app.css").read_text() + "\n/* a deploy */\n")
    after = service_worker(copy)
    version = re.compile(rb'const VERSION = "([0-9a-f]{16})"')
    assert version.search(before) and version.search(after)
    assert version.search(before).group(1) != version.search(after).group(1)  # type: ignore[union-attr]
