// The tutor's page: be available, answer offers inside their lease, teach in the live session
// view, end the session. The push channel brings offers, withdrawals and matches, and on every
// (re)connect a welcome with the tutor's state; a heartbeat goes over it every 10 s while the
// tutor is online (over HTTP when the channel is down), so the matcher keeps them online.
//
// #offers-list holds the offers seen this evening and #sessions-list the sessions taken, both
// remembered in localStorage for the matcher's load window; #sessions-count is the server's own
// count (sessions_tonight).
//
// Calls ring (ring.js): an offer plays a ring, flashes the tab title and shows a notification
// (the permission is asked when the tutor presses "Available"). A missed offer (its lease ran
// out) says so plainly in #missed, with when offers come again (the matcher rests a tutor who
// let one lapse for ignore_cooldown_s, 120 s by default; the snapshot's cooldown_until when it
// has one). In the session the student's request stays on screen (#session-request), and
// "End the session" asks first.

import { ApiError, PushChannel, apiGet, apiPost, connectionLine, initChrome, mountSessionView, requireAuth,
  serverNow, showError } from "./api.js";
import { confirmAction } from "./confirm.js";
import { errorText, formatClock, formatDuration, getLang, t } from "./i18n.js";
import { mountGuide } from "./help.js";
import { namesFor } from "./kppicker.js";
import { mountMicCheck } from "./miccheck.js";
import { Ring } from "./ring.js";
import { mountPadPairing } from "./tutorpad.js";

const HEARTBEAT_MS = 10_000;
const EVENING_S = 6 * 3600; // the matcher's load window (TUTORWIRE_MATCHER_LOAD_WINDOW_S default)
const URGENT_S = 10;
const MISSED_REST_S = 120; // the matcher's ignore_cooldown_s default, when the server does not say

const auth = requireAuth("tutor");
const $ = (id) => document.getElementById(id);
const el = {
  available: $("available"), state: $("tutor-state"), notice: $("notice"),
  offer: $("offer"), flags: $("offer-flags"), subject: $("offer-subject"), grade: $("offer-grade"),
  kps: $("offer-kps"), text: $("offer-text"), student: $("offer-student"), waiting: $("offer-waiting"),
  countdown: $("offer-countdown"), countdownText: $("offer-countdown-text"), accept: $("accept"), decline: $("decline"),
  sessionPanel: $("session-panel"), session: $("session"), end: $("end-session"),
  offersList: $("offers-list"), sessionsList: $("sessions-list"), sessionsCount: $("sessions-count"),
  ringState: $("ring-state"), missed: $("missed"), request: $("session-request"),
  requestSummary: $("session-request-summary"), srSubject: $("sr-subject"), srGrade: $("sr-grade"), srKps: $("sr-kps"),
  srText: $("sr-text"),
};
const ring = new Ring({ title: () => t("ring.title") });

// -- what this browser remembers of the evening ---------------------------------------------------

const memoryKey = auth ? `tutorwire.tutor.${auth.user}` : "";
function memory() {
  const since = serverNow() - EVENING_S;
  try {
    const m = JSON.parse(localStorage.getItem(memoryKey) || "{}");
    return {
      offers: (m.offers ?? []).filter((o) => o.at >= since),
      sessions: (m.sessions ?? []).filter((s) => s.at >= since),
    };
  } catch {
    return { offers: [], sessions: [] };
  }
}
function save(m) {
  try {
    localStorage.setItem(memoryKey, JSON.stringify({ offers: m.offers.slice(-100), sessions: m.sessions.slice(-100) }));
  } catch {
    // private mode: the lists last as long as the page
  }
}
function noteOffer(request, state) {
  const m = memory();
  const found = m.offers.find((o) => o.id === request.request_id);
  if (found) {
    if (found.state === "offered" || state === "accepted") found.state = state;
  } else {
    m.offers.push({ id: request.request_id, subject: request.subject, grade: request.grade, at: serverNow(), state,
      text: String(request.text ?? "").slice(0, 2000), knowledge_points: request.knowledge_points ?? [] });
  }
  save(m);
  renderLists();
}
function markOffer(requestId, state) {
  const m = memory();
  const found = m.offers.find((o) => o.id === requestId);
  if (found && found.state === "offered") found.state = state;
  save(m);
  renderLists();
}
function noteSession(sessionId, request) {
  const m = memory();
  if (!m.sessions.some((s) => s.id === sessionId)) {
    m.sessions.push({ id: sessionId, request_id: request?.request_id ?? null, subject: request?.subject ?? "",
      grade: request?.grade ?? "", at: serverNow(), text: String(request?.text ?? "").slice(0, 2000),
      knowledge_points: request?.knowledge_points ?? [] });
    save(m);
  }
  renderLists();
}

// -- state ----------------------------------------------------------------------------------------

let tutorState = "offline";
let offer = null; // {request, expires_at}
let view = null; // the mounted session view {sessionId, unmount}
let currentJoin = null; // the session's join, for pairing a writing pad
let mounting = null;
let sessionsTonight = 0;
let push = null;
let ticker = null;

function setState(state) {
  tutorState = state;
  renderState();
}

function renderState() {
  const online = tutorState !== "offline";
  el.available.setAttribute("aria-pressed", String(online));
  el.available.hidden = tutorState === "in_session";
  el.state.dataset.state = tutorState;
  el.state.textContent = t(`tutor.state.${tutorState}`);
  // while resting after a missed offer, "offers will appear here" would not be true: #missed says when
  el.state.hidden = restUntil > serverNow() && tutorState === "available";
  el.sessionPanel.hidden = !(view || mounting);
  document.body.classList.toggle("in-session", Boolean(view || mounting));
}

// -- a missed offer -------------------------------------------------------------------------------

let restUntil = 0; // server seconds: no offer before this (after a missed one)
let restFor = MISSED_REST_S; // how long that rest is, as the sentence says it
let restTimer = null;

function missed(until) {
  if (restUntil > 0 && Math.abs(until - restUntil) < 1) return; // the same rest, said again
  restUntil = until;
  restFor = Math.max(1, Math.ceil(until - serverNow()));
  clearInterval(restTimer);
  renderMissed();
  restTimer = setInterval(renderMissed, 1000);
}

function renderMissed() {
  const left = Math.ceil(restUntil - serverNow());
  if (restUntil === 0) {
    el.missed.hidden = true;
    renderState();
    return;
  }
  if (left <= 0) {
    clearInterval(restTimer);
    restTimer = null;
    restUntil = 0;
    el.missed.textContent = t("offer.backOn");
    el.missed.className = "note good";
    el.missed.hidden = false;
    renderState();
    return;
  }
  el.missed.className = "note bad";
  el.missed.textContent = `${t("offer.missed", { s: restFor })} ${t("offer.missedSoon", { s: left })}`;
  el.missed.hidden = false;
  renderState();
}

// -- the request beside the board ------------------------------------------------------------------

let sessionRequest = null;

async function renderRequest() {
  const r = sessionRequest;
  el.request.hidden = !r;
  if (!r) return;
  const text = r.text || t("none");
  el.requestSummary.textContent = `${t("session.request")}: ${subjectName(r.subject)} · ${r.grade} · ${text}`;
  el.srSubject.textContent = subjectName(r.subject);
  el.srGrade.textContent = String(r.grade ?? "");
  el.srText.textContent = text;
  const ids = r.knowledge_points ?? [];
  const names = ids.length ? await namesFor(r.subject, ids, getLang()) : [t("none")];
  if (sessionRequest !== r) return;
  el.srKps.replaceChildren(...names.map((name) => {
    const li = document.createElement("li");
    li.textContent = name;
    return li;
  }));
}

function showNotice(text, tone = "") {
  el.notice.textContent = text;
  el.notice.className = `note ${tone}`.trim();
  el.notice.hidden = !text;
}

// -- the offer ------------------------------------------------------------------------------------

function subjectName(subject) {
  const key = `subject.${subject}`;
  const name = t(key);
  return name === key ? subject : name;
}

function showOffer(next) {
  const isNew = offer?.request.request_id !== next.request.request_id;
  offer = next;
  noteOffer(next.request, "offered");
  renderOffer();
  if (isNew) {
    const r = next.request;
    ring.start({ title: t("ring.notifyTitle"), tag: r.request_id, body: t("ring.notifyBody", {
      subject: subjectName(r.subject), grade: r.grade, s: Math.max(0, Math.ceil(next.expires_at - serverNow())) }) });
  }
  el.offer.hidden = false;
  el.accept.disabled = false;
  el.decline.disabled = false;
  clearInterval(ticker);
  ticker = setInterval(tickOffer, 250);
  if (isNew) showNotice("");
}

function hideOffer() {
  ring.stop();
  offer = null;
  el.offer.hidden = true;
  clearInterval(ticker);
  ticker = null;
}

function renderOffer() {
  if (!offer) return;
  const r = offer.request;
  el.subject.textContent = subjectName(r.subject);
  el.grade.textContent = String(r.grade);
  const ids = r.knowledge_points;
  const fill = (names) => el.kps.replaceChildren(...names.map((name) => {
    const li = document.createElement("li");
    li.textContent = name;
    return li;
  }));
  fill(ids.length ? ids.map(() => "…") : [t("none")]);
  if (ids.length) namesFor(r.subject, ids, getLang()).then((names) => { if (offer?.request === r) fill(names); });
  el.text.textContent = r.text || t("none");
  el.student.textContent = r.student_id;
  const flags = [];
  if (r.direct) flags.push(t("offer.direct"));
  else if (r.favourite === auth.user) flags.push(t("offer.favourite"));
  el.flags.textContent = flags.join(" · ");
  el.flags.hidden = !flags.length;
  tickOffer();
}

function tickOffer() {
  if (!offer) return;
  const left = Math.max(0, Math.ceil(offer.expires_at - serverNow()));
  el.countdown.textContent = String(left);
  el.countdown.dataset.urgent = String(left <= URGENT_S);
  el.countdownText.textContent = t("offer.countdown", { s: left });
  el.waiting.textContent = formatDuration((serverNow() - offer.request.created_at) * 1000);
  if (left === 0) el.accept.disabled = true; // the matcher withdraws it in a moment
}

el.accept.addEventListener("click", async () => {
  if (!offer) return;
  const request = offer.request;
  el.accept.disabled = true;
  el.decline.disabled = true;
  try {
    const answer = await apiPost(`/api/offers/${encodeURIComponent(request.request_id)}/accept`);
    hideOffer();
    noteOffer(request, "accepted");
    setState("in_session");
    await enterSession(answer.join, answer.request ?? request);
  } catch (err) {
    showError(err, el.notice);
    if (err instanceof ApiError && (err.status === 409 || err.status === 404)) {
      markOffer(request.request_id, "expired");
      hideOffer();
      refreshMe();
    } else {
      el.accept.disabled = false;
      el.decline.disabled = false;
    }
  }
});

el.decline.addEventListener("click", async () => {
  if (!offer) return;
  const id = offer.request.request_id;
  el.accept.disabled = true;
  el.decline.disabled = true;
  try {
    await apiPost(`/api/offers/${encodeURIComponent(id)}/decline`);
    markOffer(id, "declined");
    hideOffer();
    setState("available");
  } catch (err) {
    showError(err, el.notice);
    hideOffer();
    refreshMe();
  }
});

// -- availability, heartbeat and the session ----------------------------------------------------

el.available.addEventListener("click", async () => {
  const want = el.available.getAttribute("aria-pressed") !== "true";
  if (want) { // the click is the moment to ask for alerts (and to unlock the ring's sound)
    ring.arm().then(renderRing);
  }
  el.available.disabled = true;
  try {
    const answer = await apiPost("/api/tutor/availability", { available: want });
    showNotice("");
    if (!want && offer) {
      markOffer(offer.request.request_id, "withdrawn");
      hideOffer();
    }
    setState(answer.state);
  } catch (err) {
    showError(err, el.notice);
  } finally {
    el.available.disabled = false;
  }
});

function renderRing() {
  const p = ring.permission;
  // said once the tutor has opted in to offers (a refusal before then is the browser's default)
  el.ringState.hidden = p === "unsupported" || p === "default" || !ring.armed;
  el.ringState.textContent = p === "granted" ? t("ring.enabled") : p === "denied" ? t("ring.blocked") : "";
}

async function heartbeat() {
  if (tutorState === "offline") return;
  if (push?.send({ type: "heartbeat" })) return;
  try {
    const answer = await apiPost("/api/tutor/heartbeat");
    if (answer?.state) setState(answer.state);
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) timedOut();
  }
}

function timedOut() {
  if (offer) {
    markOffer(offer.request.request_id, "withdrawn");
    hideOffer();
  }
  setState("offline");
  showNotice(t("tutor.timedOut"), "bad");
}

async function enterSession(join, request = null) {
  if (!join || view?.sessionId === join.session_id || mounting === join.session_id) return;
  $("tutor-replay").hidden = true;
  exitSession();
  mounting = join.session_id;
  currentJoin = join;
  noteSession(join.session_id, request);
  const noted = memory().sessions.find((s) => s.id === join.session_id);
  sessionRequest = request?.subject ? request : noted ?? null;
  renderRequest();
  renderState();
  try {
    view = await mountSessionView(el.session, join, "tutor", {
      refreshToken: async () => (await apiGet("/api/me")).join.token,
    });
  } catch (err) {
    showNotice(t("session.loadFailed", { msg: err.message || String(err) }), "bad");
  } finally {
    mounting = null;
    renderState();
  }
  refreshMe();
}

function exitSession() {
  currentJoin = null;
  sessionRequest = null;
  document.getElementById("pad-code").hidden = true;
  if (view) {
    view.unmount();
    view = null;
  }
  renderState();
}

mountPadPairing(document.getElementById("use-pad"), document.getElementById("pad-code"), () => currentJoin,
  async () => (currentJoin.token = (await apiGet("/api/me")).join.token));

el.end.addEventListener("click", async () => {
  const ok = await confirmAction({ title: t("session.endConfirm.title"), body: t("session.endConfirm.body"),
    ok: t("session.endConfirm.ok"), cancel: t("sv.confirm.cancel") });
  if (!ok) return;
  el.end.disabled = true;
  const ended = view?.sessionId ?? currentJoin?.session_id ?? null;
  try {
    const answer = await apiPost("/api/tutor/availability", { available: true }); // ends it on the matcher's side
    exitSession();
    if (ended) { // the end screen links the recording, "being prepared" until the archiver has it
      $("tutor-replay-link").href = `/replay?session=${encodeURIComponent(ended)}`;
      $("tutor-replay").hidden = false;
    }
    setState(answer.state);
    showNotice(t("status.ended"), "good");
    refreshMe();
  } catch (err) {
    showError(err, el.notice);
  } finally {
    el.end.disabled = false;
  }
});

// -- lists ----------------------------------------------------------------------------------------

function renderLists() {
  const m = memory();
  el.offersList.replaceChildren(...(m.offers.length ? [...m.offers].reverse().map((o) => {
    const li = document.createElement("li");
    li.dataset.requestId = o.id;
    li.dataset.state = o.state;
    li.textContent = t("offers.item", {
      time: formatClock(o.at), subject: subjectName(o.subject), grade: o.grade, state: t(`offerState.${o.state}`),
    });
    return li;
  }) : [emptyItem("offers.empty")]));
  const current = view?.sessionId ?? mounting;
  el.sessionsList.replaceChildren(...(m.sessions.length ? [...m.sessions].reverse().map((s) => {
    const li = document.createElement("li");
    li.dataset.sessionId = s.id;
    li.textContent = t("sessions.item", { time: formatClock(s.at), subject: subjectName(s.subject), grade: s.grade });
    if (s.id === current) li.append(" ", t("sessions.current"));
    return li;
  }) : [emptyItem("sessions.empty")]));
  el.sessionsCount.dataset.count = String(Math.max(sessionsTonight, m.sessions.length));
  el.sessionsCount.textContent = t("sessions.count", { n: el.sessionsCount.dataset.count });
}

function emptyItem(key) {
  const li = document.createElement("li");
  li.className = "empty";
  li.textContent = t(key);
  return li;
}

// -- the server's view ------------------------------------------------------------------------------

/** Take in a snapshot of the tutor (a welcome, or /api/me). */
function applySnapshot(me) {
  if (typeof me.sessions_tonight === "number") sessionsTonight = me.sessions_tonight;
  if (typeof me.cooldown_until === "number" && me.cooldown_until > serverNow()) missed(me.cooldown_until);
  setState(me.state);
  if (me.offer) showOffer(me.offer);
  else if (offer) {
    markOffer(offer.request.request_id, "withdrawn");
    hideOffer();
  }
  if (me.state === "in_session" && me.join) enterSession(me.join);
  else if (me.state !== "in_session" && view) exitSession();
  renderLists();
}

async function refreshMe() {
  try {
    const me = await apiGet("/api/me");
    if (typeof me.sessions_tonight === "number") sessionsTonight = me.sessions_tonight;
    if (typeof me.cooldown_until === "number" && me.cooldown_until > serverNow()) missed(me.cooldown_until);
    renderLists();
  } catch {
    // the push channel's next welcome brings the same
  }
}

function onPush(msg) {
  switch (msg.type) {
    case "welcome":
      applySnapshot(msg);
      break;
    case "offer":
      setState("offered");
      showOffer(msg);
      break;
    case "offer_withdrawn": {
      const reason = msg.reason || "";
      const state = reason === "declined" ? "declined" : reason === "lease expired" ? "expired" : "withdrawn";
      markOffer(msg.request_id, state);
      if (offer?.request.request_id === msg.request_id) {
        hideOffer();
        if (reason === "lease expired") {
          missed(serverNow() + MISSED_REST_S); // corrected at once from the server's cooldown_until
          refreshMe();
          showNotice("");
        } else if (reason !== "declined") {
          const key = `reason.${reason}`;
          const text = t(key);
          showNotice(t("offer.withdrawn", { reason: text === key ? t("offer.withdrawnOther") : text }));
        }
      }
      if (tutorState === "offered") setState(reason === "tutor went offline" ? "offline" : "available");
      break;
    }
    case "matched": {
      const seen = memory().offers.find((o) => o.id === msg.request_id);
      hideOffer();
      markOffer(msg.request_id, "accepted");
      setState("in_session");
      enterSession(msg.join, seen ? { request_id: seen.id, subject: seen.subject, grade: seen.grade, text: seen.text,
        knowledge_points: seen.knowledge_points } : null);
      break;
    }
    case "error":
      if (msg.code === 409 && /offline/.test(msg.message || "")) timedOut();
      else if (msg.code !== 401) showNotice(errorText(new ApiError(msg.code, msg.message || "")), "bad");
      break;
    default:
      break;
  }
}

// -- start ----------------------------------------------------------------------------------------

if (auth) {
  initChrome(auth);
  renderState();
  renderLists();
  window.addEventListener("tw:langchange", () => {
    renderState();
    renderOffer();
    renderLists();
    renderRing();
    renderMissed();
    renderRequest();
  });
  renderRing();
  mountMicCheck($("mic-check-open"), $("mic-check"), t);
  mountGuide("tutor", t);
  refreshMe(); // also sets the server clock before the first offer's countdown
  push = new PushChannel({ token: auth.token, onMessage: onPush, onStatus: connectionLine() });
  push.connect();
  setInterval(heartbeat, HEARTBEAT_MS);
  window.tw = { ...(window.tw || {}), ring, tutor: { push, get state() { return tutorState; }, get offer() { return offer; },
    get view() { return view; } } };
}
