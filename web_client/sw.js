// The service worker of the pages (served at /sw.js, scope /): the shell (the pages, their
// scripts, styles and vendored modules) is cached at install, so a second visit starts without
// the network. Pages are network-first (a deploy reaches everyone at once) and fall back to the
// cache when the network is cut; static files are served from the cache and refreshed behind
// it (stale-while-revalidate). The API, the WebSockets and the recordings are never cached.
// The server fills in SHELL (every file of the shell) and VERSION (a digest of their contents):
// a new deploy is a new cache, and the old one is deleted when the new worker takes over.

const VERSION = '__VERSION__';
const SHELL = __SHELL__;
const CACHE = `tutorwire-shell-${VERSION}`;
const PAGES = new Set(['/', '/student', '/tutor', '/replay', '/class', '/class/new']);

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith('tutorwire-shell-') && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

function isShell(url) {
  return url.origin === self.location.origin && (PAGES.has(url.pathname) || url.pathname.startsWith('/static/')
    || /^\/class\/[^/]+$/.test(url.pathname));
}

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) cache.put(request, response.clone());
    return response;
  } catch (exc) {
    const cached = await cache.match(request, { ignoreSearch: true });
    if (cached) return cached;
    throw exc;
  }
}

async function staleWhileRevalidate(request, event) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request, { ignoreSearch: true });
  const fresh = fetch(request).then((response) => {
    if (response.ok) cache.put(request, response.clone());
    return response;
  });
  if (cached) {
    event.waitUntil(fresh.catch(() => undefined));
    return cached;
  }
  return fresh;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (!isShell(url)) return; // the API, WebSockets and recordings go to the network as they are
  if (request.mode === 'navigate' || PAGES.has(url.pathname) || !url.pathname.startsWith('/static/')) {
    event.respondWith(networkFirst(request));
  } else {
    event.respondWith(staleWhileRevalidate(request, event));
  }
});
