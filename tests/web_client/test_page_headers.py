"""Every page and static file carries the pages' security headers, however it is reached: the
probe found ``/static/index.html`` (and the other pages under ``/static``) served without them."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunningServer

PATHS = ["/", "/student", "/tutor", "/replay", "/class", "/class/new", "/class/3f9a1c0b7d2e",
         "/static/index.html", "/static/student.html", "/static/tutor.html", "/static/replay.html",
         "/static/class.html", "/static/js/signin.js", "/static/js/nav.js", "/static/js/class.js"]


@pytest.mark.parametrize("path", PATHS)
async def test_every_page_and_file_has_the_policy_headers(server: RunningServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://{server.base}") as http:
        first = await http.get(path)
        assert first.status_code == 200, path
        responses = [first]
        if "etag" in first.headers:  # a revalidation (304 from /static) must carry them too
            again = await http.get(path, headers={"if-none-match": first.headers["etag"]})
            assert again.status_code == (304 if path.startswith("/static/") else 200)
            responses.append(again)
    for r in responses:
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, (path, r.status_code)
        assert r.headers.get("x-content-type-options") == "nosniff", (path, r.status_code)
        assert r.headers.get("referrer-policy") == "no-referrer"
