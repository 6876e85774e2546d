// The browser's side of the HTTP API and the matcher push channel (/ws/matcher).
//
// The API token lives in sessionStorage (one sign-in per tab; gone when the tab closes). Every
// call carries it as "Authorization: Bearer"; a failed call throws ApiError with the HTTP status,
// the server's sentence and, on 422, the field it is about. PushChannel keeps the push channel
// open: it signs in with the first message, reconnects with backoff, and hands each message to
// the page. The server sends the current state ("welcome") on every (re)connect, so a page
// rebuilds from it and never polls. At the end: what every page shares (the header, the
// connection line, errors next to their fields, mounting the live session view).

import { errorText, fieldSentence, initI18n, sessionI18n, t } from "./i18n.js";
import { registerShell } from "./shell.js";

const AUTH_KEY = "tutorwire.auth";

/** The signed-in user {token, user, role, expires} of this tab, or null. */
export function getAuth() {
  try {
    const auth = JSON.parse(sessionStorage.getItem(AUTH_KEY) || "null");
    if (!auth || typeof auth.token !== "string") return null;
    if (typeof auth.expires === "number" && auth.expires * 1000 <= Date.now()) return null;
    return auth;
  } catch {
    return null;
  }
}

export function setAuth(auth) {
  sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
}

export function clearAuth() {
  sessionStorage.removeItem(AUTH_KEY);
}

/**
 * The signed-in user if their role is one of `roles`; otherwise back to the sign-in page
 * (which says why) and null.
 */
export function requireAuth(...roles) {
  const auth = getAuth();
  if (auth && roles.includes(auth.role)) return auth;
  const query = new URLSearchParams({
    need: roles.join(","), why: auth ? "role" : "signin", next: location.pathname + location.search,
  });
  location.replace(`/?${query}`);
  return null;
}

/** An API call that did not succeed: `status` (0: no answer), `sentence`, and `field` on 422. */
export class ApiError extends Error {
  constructor(status, sentence, field = null) {
    super(field ? `${field}: ${sentence}` : sentence);
    this.name = "ApiError";
    this.status = status;
    this.sentence = sentence;
    this.field = field;
  }
}

// How far the browser's clock is ahead of the server's, in ms. Offers and waiting times come as
// server timestamps, and a phone's clock can be minutes off. Each answer's Date header (whole
// seconds, stamped between our send and our receipt) bounds the skew to an interval; the
// intersection of those intervals narrows with every call, and its middle is the estimate.
let skewLo = -Infinity;
let skewHi = Infinity;

function noteServerDate(response, sentMs, receivedMs) {
  const header = response.headers.get("date");
  const stamp = header ? Date.parse(header) : NaN; // the server's time, rounded down to the second
  if (!Number.isNaN(stamp)) narrowSkew(sentMs - (stamp + 1000), receivedMs - stamp);
}

/**
 * The server stamped `serverSeconds` (e.g. a request's created_at) while a call was under way,
 * between `sentMs` and `receivedMs` on our clock: a tight bound on the skew.
 */
export function noteServerTime(serverSeconds, sentMs, receivedMs) {
  narrowSkew(sentMs - serverSeconds * 1000, receivedMs - serverSeconds * 1000);
}

function narrowSkew(lo, hi) {
  if (lo > skewHi || hi < skewLo) {
    [skewLo, skewHi] = [lo, hi]; // a clock moved: start again
  } else {
    skewLo = Math.max(skewLo, lo);
    skewHi = Math.min(skewHi, hi);
  }
}

/** The server's wall clock now, in seconds (as the API's timestamps). */
export function serverNow() {
  const skew = Number.isFinite(skewLo) && Number.isFinite(skewHi) ? (skewLo + skewHi) / 2 : 0;
  return (Date.now() - skew) / 1000;
}

let unauthorizedHandler = () => {
  clearAuth();
  const query = new URLSearchParams({ why: "expired", next: location.pathname + location.search });
  location.replace(`/?${query}`);
};

async function send(method, path, body, { auth = true, accept = "application/json" } = {}) {
  const headers = { accept };
  const token = getAuth()?.token;
  if (auth && token) headers.authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  const sent = Date.now();
  try {
    response = await fetch(path, { method, headers, body: payload, cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, `no answer from the server (${err.message})`);
  }
  noteServerDate(response, sent, Date.now());
  if (response.ok) return response;
  let sentence = response.statusText || `HTTP ${response.status}`;
  let field = null;
  let errors = null;
  try {
    const doc = await response.json();
    if (doc && typeof doc.error === "string") sentence = doc.error;
    if (doc && typeof doc.field === "string") field = doc.field;
    if (doc && doc.errors && typeof doc.errors === "object") errors = doc.errors; // every bad field (422)
  } catch {
    // not JSON: keep the status text
  }
  const error = new ApiError(response.status, sentence, field);
  error.errors = errors;
  if (response.status === 401 && auth) unauthorizedHandler(error);
  throw error;
}

/** GET/POST `path` with the bearer token; the JSON answer, or ApiError. */
export async function apiJson(method, path, body) {
  const response = await send(method, path, body);
  if (response.status === 204) return null;
  return response.json();
}

export const apiGet = (path) => apiJson("GET", path);
export const apiPost = (path, body = {}) => apiJson("POST", path, body);

/** GET `path` with the bearer token as a Blob (audio, exports). */
export async function apiBlob(path, accept = "*/*") {
  const response = await send("GET", path, undefined, { accept });
  return response.blob();
}

/** GET without the token (dev sign-in); JSON or ApiError. */
export async function publicJson(path) {
  const response = await send("GET", path, undefined, { auth: false });
  return response.json();
}

/** ws:// or wss:// on this page's host, for a server path such as a join's ws_path. */
export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${path}`;
}

/**
 * The matcher push channel. Messages go to `onMessage(msg)` (a JSON object with `type`:
 * welcome, offer, offer_withdrawn, request, matched, error). `onStatus(state)` hears
 * "connecting", "open" (after the welcome), "retrying" (with the delay in ms) and "refused"
 * (the token was refused: no retry). Backoff doubles from 0.5 s to 15 s with jitter, and
 * resets once a welcome arrives; going online or back to the tab retries at once.
 */
export class PushChannel {
  constructor({ token, onMessage, onStatus = () => {}, path = "/ws/matcher" }) {
    this.token = token;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.url = wsUrl(path);
    this.ws = null;
    this.welcomed = false;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.retryNow = () => {
      if (!this.stopped && !this.ws) {
        clearTimeout(this.timer);
        this.connect();
      }
    };
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.retryNow();
    };
    window.addEventListener("online", this.retryNow);
    document.addEventListener("visibilitychange", this.onVisible);
  }

  get open() {
    return this.welcomed && this.ws?.readyState === WebSocket.OPEN;
  }

  connect() {
    if (this.stopped || this.ws) return;
    this.onStatus("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.welcomed = false;
    ws.addEventListener("open", () => ws.send(JSON.stringify({ token: this.token })));
    ws.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (msg.type === "welcome") {
        this.welcomed = true;
        this.attempt = 0;
        this.onStatus("open");
      }
      if (msg.type === "error" && msg.code === 401) {
        this.stop();
        this.onStatus("refused");
      }
      this.onMessage(msg);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.welcomed = false;
      if (this.stopped) return;
      if (event.code === 4001) {
        this.stop();
        this.onStatus("refused");
        return;
      }
      // 4010: the server dropped us for falling behind; the welcome will bring us up to date.
      const delay = event.code === 4010 ? 0 : this.backoff();
      this.onStatus("retrying", delay);
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  backoff() {
    const base = Math.min(15000, 500 * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  /** Send a JSON message if the channel is open; false if it is not. */
  send(msg) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this.retryNow);
    document.removeEventListener("visibilitychange", this.onVisible);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "bye");
  }
}

// -- what the pages share ------------------------------------------------------------------------

/** Language switch, "signed in as", sign-out; call once the page knows its user. */
export function initChrome(auth) {
  initI18n();
  registerShell(); // the next visit starts without the network
  const who = document.getElementById("whoami");
  const render = () => {
    if (who && auth) who.textContent = t("nav.signedInAs", { user: auth.user, role: t(`role.${auth.role}`) });
  };
  render();
  window.addEventListener("tw:langchange", render);
  document.getElementById("signout")?.addEventListener("click", () => {
    clearAuth();
    location.assign("/");
  });
}

/** A PushChannel onStatus that shows the connection in #push-conn (empty while all is well). */
export function connectionLine(el = document.getElementById("push-conn")) {
  let last = ["open"];
  const render = () => {
    if (!el) return;
    const [state, delay] = last;
    el.dataset.state = state;
    el.textContent = state === "open" ? ""
      : state === "retrying" ? t("conn.retrying", { s: Math.max(1, Math.round(delay / 1000)) })
      : t(`conn.${state}`);
  };
  window.addEventListener("tw:langchange", render);
  return (state, delay) => {
    last = [state, delay];
    render();
  };
}

/**
 * Show `err` next to its field when the form has one (element #err-<field>, the input marked
 * aria-invalid and focused), else in `fallback`. `inputs` maps a server field to its input
 * when the ids differ (knowledge_points -> #kps).
 */
export function showError(err, fallback, inputs = {}) {
  const field = err?.field;
  const slot = field ? document.getElementById(`err-${field}`) : null;
  if (slot) {
    slot.textContent = fieldSentence(err);
    slot.hidden = false;
    const input = inputs[field] ?? document.getElementById(field);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus?.();
    }
    return;
  }
  if (fallback) {
    fallback.textContent = errorText(err);
    fallback.hidden = false;
  }
}

/** Hide every error under `root` and clear aria-invalid. */
export function clearErrors(root) {
  for (const el of root.querySelectorAll(".field-error, .form-error")) {
    el.textContent = "";
    el.hidden = true;
  }
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/**
 * Mount the live session view (sessionview.js, loaded when first needed) into `root` for a
 * matcher `join` ({token, ws_path, session_id}). `onEnd` is called if the view reports that the
 * session is over (an `onEnd` option, or a "tw:session-ended" event on `root`);
 * `refreshToken` (async () => a new join token) lets it rejoin after its token expired.
 * Returns {sessionId, unmount()}; unmount is safe to call twice.
 */
export async function mountSessionView(root, join, role, { onEnd = () => {}, refreshToken = null } = {}) {
  const { mountSession } = await import("/static/js/sessionview.js");
  let ended = false;
  const endOnce = (detail) => {
    if (ended) return;
    ended = true;
    onEnd(detail);
  };
  const onEvent = (event) => endOnce(event.detail);
  root.addEventListener("tw:session-ended", onEvent);
  const handle = await mountSession(root, {
    url: join.ws_url || wsUrl(join.ws_path), token: join.token, role, i18n: sessionI18n(), onEnd: endOnce, refreshToken,
  });
  let gone = false;
  return {
    sessionId: join.session_id,
    handle,
    unmount() {
      if (gone) return;
      gone = true;
      ended = true;
      root.removeEventListener("tw:session-ended", onEvent);
      const stop = handle?.unmount ?? handle?.destroy ?? handle?.close ?? (typeof handle === "function" ? handle : null);
      try {
        stop?.call(handle);
      } finally {
        root.replaceChildren();
      }
    },
  };
}
