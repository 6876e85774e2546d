// Navigation that untrusted input may steer: confined to this site.

/**
 * The path on ``origin`` that an untrusted ``next`` (a ?next= value) names, or null when it
 * names anything else. ``next`` is parsed as the browser will parse it when navigating (the
 * WHATWG URL parser drops tabs and newlines and reads backslashes as slashes, so "/\t/evil.example/"
 * is "//evil.example/"), and the result is kept only if it stays on ``origin``.
 */
export function sameOriginPath(next, origin) {
  if (typeof next !== "string" || !next.startsWith("/")) return null;
  let url;
  try {
    url = new URL(next, origin);
  } catch {
    return null;
  }
  if (url.origin !== new URL(origin).origin) return null;
  return url.pathname + url.search + url.hash;
}
