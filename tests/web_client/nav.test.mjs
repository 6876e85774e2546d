// sameOriginPath (web_client/js/nav.js) under Node's test runner: Node's URL is the WHATWG parser
// the browser navigates with.
import assert from "node:assert/strict";
import { test } from "node:test";

import { sameOriginPath } from "../../web_client/js/nav.js";

const ORIGIN = "http://127.0.0.1:8000";

test("paths on this site pass, with their query and fragment", () => {
  assert.equal(sameOriginPath("/tutor", ORIGIN), "/tutor");
  assert.equal(sameOriginPath("/replay?id=abc#t=5", ORIGIN), "/replay?id=abc#t=5");
  assert.equal(sameOriginPath("/a/../student", ORIGIN), "/student");
});

test("every way out of the site is refused", () => {
  for (const next of ["/\t/evil.example/", "/%09/evil.example/", "//evil.example/", "/\\evil.example",
    "/\n/evil.example", "\\\\evil.example", "https://evil.example/", "javascript:alert(1)", "", "tutor",
    " /tutor", "/\r\n/evil.example/"]) {
    const got = sameOriginPath(next, ORIGIN);
    if (got !== null) assert.equal(new URL(got, ORIGIN).origin, ORIGIN, JSON.stringify(next));
    if (next.startsWith("/\t") || next.startsWith("//") || next.startsWith("/\\") || next.startsWith("/\n") ||
      next.startsWith("/\r")) {
      assert.equal(got, null, JSON.stringify(next));
    }
  }
  assert.equal(sameOriginPath(null, ORIGIN), null);
});
