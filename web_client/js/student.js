// The student's page: ask for help, wait (the push channel says what happens; nothing polls),
// meet the tutor in the live session view, leave, and rate the session.
//
// The page follows the student's latest request, which every (re)connect's welcome brings:
// queued -> #status waiting, offered -> offered, accepted -> matched (the session view is mounted
// with the request's join), cancelled / expired -> said once for the request asked from this
// browser. Leaving asks first (confirm.js). A session the student left (button#leave) is
// remembered in localStorage, so that a reload does not pull them back in by itself: while the
// session is live (the request's join is still given) they get #rejoin-panel ("Go back to the
// session", button#rejoin) beside the rating; once it has ended, the rating alone, with a link
// to its recording (#replay-link, "being prepared" until the archiver has it).

import {
  ApiError, PushChannel, apiGet, apiPost, clearErrors, connectionLine, initChrome, mountSessionView, noteServerTime,
  requireAuth, serverNow, showError,
} from "./api.js";
import { confirmAction } from "./confirm.js";
import { fieldSentence, formatDuration, getLang, t } from "./i18n.js";
import { mountGuide } from "./help.js";
import { KnowledgePicker, MAX_POINTS } from "./kppicker.js";
import { mountMicCheck } from "./miccheck.js";

const REJOIN_WITHIN_S = 3 * 3600; // an accepted request older than this is a session long over
const RATE_WITHIN_S = 12 * 3600; // ... and after this, too old to ask for a rating

const STATUS_OF = { queued: "waiting", offered: "offered", accepted: "matched", cancelled: "cancelled", expired: "expired" };

const auth = requireAuth("student");
const $ = (id) => document.getElementById(id);
const el = {
  status: $("status"), cancel: $("cancel"), notice: $("notice"),
  askPanel: $("ask-panel"), ask: $("ask"), askFields: $("ask-fields"), askGo: $("ask-go"),
  subject: $("subject"), grade: $("grade"), kpPicker: $("kp-picker"), text: $("text"), favourite: $("favourite"),
  direct: $("direct"), bodyError: $("err-body"),
  sessionPanel: $("session-panel"), session: $("session"), leave: $("leave"),
  ratePanel: $("rate-panel"), rate: $("rate"), check: $("check"), rateGo: $("rate-go"), rateSkip: $("rate-skip"),
  rateError: $("rate-error"), rejoinPanel: $("rejoin-panel"), rejoin: $("rejoin"), replayNote: $("replay-note"),
  replayLink: $("replay-link"),
};

// -- what this browser remembers of the student's sessions -------------------------------------

const memoryKey = auth ? `tutorwire.student.${auth.user}` : "";
function memory() {
  try {
    const m = JSON.parse(localStorage.getItem(memoryKey) || "{}");
    return { asked: m.asked ?? null, left: m.left ?? [], rated: m.rated ?? [] };
  } catch {
    return { asked: null, left: [], rated: [] };
  }
}
function remember(change) {
  const m = { ...memory(), ...change };
  m.left = m.left.slice(-50);
  m.rated = m.rated.slice(-50);
  try {
    localStorage.setItem(memoryKey, JSON.stringify(m));
  } catch {
    // private mode: this tab still works, a reload just knows less
  }
}

// -- state -------------------------------------------------------------------------------------

let request = null; // the request the page follows (the API's public view)
let statusState = ""; // #status data-state
let view = null; // {sessionId, unmount} while the session view is mounted
let mounting = null; // the session id being mounted
let rating = null; // the session id the rating form is for
let rejoinable = null; // {sessionId, join} of a live session the student left
let lastJoin = null; // the join of the session view mounted last
let ticker = null;

function setStatus(state) {
  statusState = state;
  el.status.dataset.state = state;
  renderStatus();
  clearInterval(ticker);
  ticker = null;
  if (state === "waiting" || state === "offered") ticker = setInterval(renderElapsed, 1000);
}

function renderStatus() {
  const state = statusState;
  if (!state) {
    el.status.replaceChildren();
    el.status.textContent = "";
  } else if (state === "waiting" || state === "offered") {
    // The sentence is announced once; the ticking time is a timer (not announced every second).
    const [before, after = ""] = t(`status.${state}`, { time: "\u0000" }).split("\u0000");
    const elapsed = document.createElement("span");
    elapsed.className = "elapsed";
    elapsed.setAttribute("role", "timer");
    elapsed.setAttribute("aria-live", "off");
    el.status.replaceChildren(before.trimEnd(), " ", elapsed, after);
    renderElapsed();
  } else {
    el.status.textContent = t(state === "ended" ? "status.ended" : `status.${state}`);
  }
  el.cancel.hidden = !(state === "waiting" || state === "offered");
}

function renderElapsed() {
  const span = el.status.querySelector(".elapsed");
  if (span && request) span.textContent = formatDuration((serverNow() - request.created_at) * 1000);
}

function showNotice(text) {
  el.notice.textContent = text;
  el.notice.hidden = !text;
}

function showPanels({ ask, askEnabled = true, session = false, rate = false, rejoin = false }) {
  el.askPanel.hidden = !ask;
  el.askFields.disabled = !askEnabled;
  el.sessionPanel.hidden = !session;
  el.ratePanel.hidden = !rate;
  el.rejoinPanel.hidden = !rejoin;
  $("mic-card").hidden = !ask; // the check is for before a session
  document.body.classList.toggle("in-session", session);
}

// -- following the request -----------------------------------------------------------------------

/** Apply a request as the server reports it; `join` comes with a welcome or a matched push. */
function follow(r, join = null) {
  const m = memory();
  const age = serverNow() - r.created_at;
  const ours = r.request_id === m.asked;
  if (request && r.request_id !== request.request_id && r.created_at < request.created_at) return; // stale
  request = r;
  switch (r.state) {
    case "queued":
    case "offered":
      if (!view && !mounting) {
        setStatus(STATUS_OF[r.state]);
        showPanels({ ask: true, askEnabled: false });
      }
      return;
    case "accepted": {
      const sessionId = r.session_id;
      const live = !r.session_ended && age < REJOIN_WITHIN_S;
      const liveJoin = join ?? r.join ?? null;
      if (!m.left.includes(sessionId) && live) {
        setStatus("matched");
        if (join) enterSession(join);
        else showPanels({ ask: false, session: Boolean(view || mounting) }); // the matched push brings the join
      } else if (live && liveJoin && !view && !mounting) {
        offerRejoin(sessionId, liveJoin);
      } else if (!m.rated.includes(sessionId) && age < RATE_WITHIN_S) {
        askForRating(sessionId);
      } else if (!view && rating === null) {
        setStatus("");
        showPanels({ ask: true });
      }
      return;
    }
    default: // cancelled, expired
      if (view || mounting || rating !== null) return;
      setStatus(ours ? STATUS_OF[r.state] : "");
      showPanels({ ask: true });
  }
}

async function enterSession(join) {
  if (view?.sessionId === join.session_id || mounting === join.session_id) return;
  leaveSession(false);
  mounting = join.session_id;
  lastJoin = join;
  rejoinable = null;
  setStatus("matched");
  showNotice("");
  showPanels({ ask: false, session: true });
  try {
    const requestId = request?.request_id;
    view = await mountSessionView(el.session, join, "student", {
      onEnd: () => finishSession(join.session_id),
      refreshToken: async () => (await apiGet(`/api/requests/${encodeURIComponent(requestId)}`)).join.token,
    });
  } catch (err) {
    showNotice(t("session.loadFailed", { msg: err.message || String(err) }));
  } finally {
    mounting = null;
  }
}

function leaveSession(remembered = true) {
  if (!view) return null;
  const id = view.sessionId;
  view.unmount();
  view = null;
  if (remembered) remember({ left: [...memory().left.filter((s) => s !== id), id] });
  return id;
}

/** The session view says it is over (or the tutor ended it): unmount and ask for a rating. */
function finishSession(sessionId) {
  const id = leaveSession() ?? sessionId;
  if (id && !memory().left.includes(id)) remember({ left: [...memory().left, id] });
  rejoinable = null;
  setStatus("ended");
  askForRating(id);
}

/** The student chose to leave a live session: they can go back while it lasts. */
function leaveLive() {
  const join = lastJoin;
  const id = leaveSession() ?? request?.session_id;
  if (!id) return;
  if (join && join.session_id === id) offerRejoin(id, join);
  else finishSession(id);
}

function offerRejoin(sessionId, join) {
  rejoinable = { sessionId, join };
  setStatus("");
  if (memory().rated.includes(sessionId)) showPanels({ ask: false, rejoin: true });
  else askForRating(sessionId, true);
}

function askForRating(sessionId, rejoin = false) {
  const same = rating === sessionId && !el.ratePanel.hidden; // a reconnect: keep what is being typed
  rating = sessionId;
  if (!same) {
    clearErrors(el.rate);
    el.rate.reset();
  }
  const canRejoin = rejoin && rejoinable?.sessionId === sessionId;
  showPanels({ ask: false, session: false, rate: true, rejoin: canRejoin });
  el.replayNote.hidden = canRejoin;
  el.replayLink.href = `/replay?session=${encodeURIComponent(sessionId)}`;
  if (!canRejoin && statusState !== "ended") setStatus("ended");
}

function doneRating(message) {
  rating = null;
  if (rejoinable) { // rated, and the session still goes on: going back stays possible
    showPanels({ ask: false, rejoin: true });
    showNotice(message);
    return;
  }
  setStatus("");
  showPanels({ ask: true });
  showNotice(message);
}

el.rejoin.addEventListener("click", async () => {
  if (!rejoinable) return;
  const { sessionId } = rejoinable;
  el.rejoin.disabled = true;
  try {
    let join = rejoinable.join;
    if (request?.request_id && request.session_id === sessionId) { // a fresh token: the old one may have expired
      try {
        join = (await apiGet(`/api/requests/${encodeURIComponent(request.request_id)}`)).join ?? join;
      } catch (err) {
        if (err instanceof ApiError && err.status === 410) { // it ended meanwhile
          finishSession(sessionId);
          return;
        }
      }
    }
    remember({ left: memory().left.filter((s) => s !== sessionId) });
    rating = null;
    await enterSession(join);
  } finally {
    el.rejoin.disabled = false;
  }
});

// -- the push channel -----------------------------------------------------------------------------

function onPush(msg) {
  switch (msg.type) {
    case "welcome": {
      const latest = (msg.requests || [])[0];
      if (latest) follow(latest, latest.join ?? null);
      else if (!view && !mounting && rating === null) {
        setStatus("");
        showPanels({ ask: true });
      }
      break;
    }
    case "request":
      if (msg.request) follow(msg.request);
      break;
    case "matched":
      if (msg.join && !memory().left.includes(msg.session_id)) {
        if (request?.request_id === msg.request_id) request = { ...request, state: "accepted", session_id: msg.session_id };
        enterSession(msg.join);
      }
      break;
    case "session_ended":
      // The tutor ended the session: move on to rating it (no going back now).
      if (view?.sessionId === msg.session_id || request?.session_id === msg.session_id
        || rejoinable?.sessionId === msg.session_id) {
        finishSession(msg.session_id);
      }
      break;
    case "error":
      if (msg.code !== 401) showNotice(msg.message || "");
      break;
    default:
      break;
  }
}

// -- the ask form ---------------------------------------------------------------------------------

const picker = auth ? new KnowledgePicker(el.kpPicker, {
  subject: () => el.subject.value, grade: () => gradeNumber(el.grade.value), lang: getLang, t,
  describedBy: "err-knowledge_points",
}) : null;

function gradeNumber(raw) {
  const text = String(raw).trim();
  return /^\d+$/.test(text) && Number(text) >= 1 && Number(text) <= 12 ? Number(text) : null;
}

/** Every problem of the form at once, each next to its field; the first field gets the focus. */
function checkForm(body) {
  const problems = [];
  if (body.grade === null || gradeNumber(String(body.grade)) === null) problems.push(["grade", t("ask.gradeNeeded"), el.grade]);
  if (body.knowledge_points.length > MAX_POINTS) {
    problems.push(["knowledge_points", t("kp.max", { n: MAX_POINTS }), el.kpPicker.querySelector("#kp-search")]);
  }
  if (body.text.length > 2000) problems.push(["text", t("ask.textTooLong"), el.text]);
  if (body.direct && !body.favourite) problems.push(["favourite", t("ask.favouriteNeeded"), el.favourite]);
  return problems;
}

function showProblems(problems) {
  for (const [field, sentence, input] of problems) {
    const slot = document.getElementById(`err-${field}`);
    if (slot) {
      slot.textContent = sentence;
      slot.hidden = false;
    }
    input?.setAttribute("aria-invalid", "true");
  }
  el.bodyError.textContent = problems.length > 1 ? t("ask.errors") : "";
  el.bodyError.hidden = problems.length <= 1;
  problems[0]?.[2]?.focus();
}

function gradeValue(raw) {
  const text = raw.trim();
  return /^\d+$/.test(text) ? Number(text) : text === "" ? null : text; // the server judges the rest
}

el.subject.addEventListener("change", () => picker?.reload());
el.grade.addEventListener("change", () => picker?.render());

el.ask.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(el.ask);
  showNotice("");
  const favourite = el.favourite.value.trim();
  const body = {
    subject: el.subject.value,
    grade: gradeValue(el.grade.value),
    knowledge_points: picker ? picker.value() : [],
    text: el.text.value.trim(),
    favourite: favourite || null,
    direct: el.direct.checked,
  };
  const problems = checkForm(body);
  if (problems.length) {
    showProblems(problems);
    return;
  }
  el.askGo.disabled = true;
  el.askGo.textContent = t("ask.sending");
  try {
    const sent = Date.now();
    const created = await apiPost("/api/requests", body);
    noteServerTime(created.created_at, sent, Date.now()); // the waiting time counts from it
    remember({ asked: created.request_id });
    request = null;
    follow(created);
    // the status and its Cancel button are above the form the student scrolled down to fill in
    el.status.scrollIntoView({ block: "start", behavior: "smooth" });
    el.cancel.focus({ preventScroll: true });
  } catch (err) {
    if (err instanceof ApiError && err.errors && typeof err.errors === "object") { // every field the server names
      showProblems(Object.entries(err.errors).map(([field, sentence]) => [field, fieldSentence(new ApiError(422, String(sentence), field)),
        document.getElementById(field) ?? (field === "knowledge_points" ? el.kpPicker.querySelector("#kp-search") : null)]));
    } else {
      showError(err, el.bodyError, { knowledge_points: el.kpPicker.querySelector("#kp-search") });
    }
  } finally {
    el.askGo.disabled = false;
    el.askGo.textContent = t("ask.go");
  }
});

el.cancel.addEventListener("click", async () => {
  if (!request) return;
  el.cancel.disabled = true;
  try {
    follow(await apiPost(`/api/requests/${encodeURIComponent(request.request_id)}/cancel`));
  } catch (err) {
    showError(err, el.notice);
  } finally {
    el.cancel.disabled = false;
  }
});

el.leave.addEventListener("click", async () => {
  const ok = await confirmAction({ title: t("session.leaveConfirm.title"), body: t("session.leaveConfirm.body"),
    ok: t("session.leaveConfirm.ok"), cancel: t("sv.confirm.cancel") });
  if (ok) leaveLive();
});

// -- the rating form ------------------------------------------------------------------------------

el.rate.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(el.rate);
  const chosen = el.rate.querySelector("input[name=rating]:checked");
  if (!chosen) {
    showError(new ApiError(422, t("rate.needRating"), "rating"), el.rateError,
      { rating: el.rate.querySelector("input[name=rating]") });
    return;
  }
  const body = { rating: Number(chosen.value) };
  const check = el.check.value.trim();
  if (check !== "") {
    const percent = /^\d+(\.\d+)?$/.test(check) ? Number(check) : NaN;
    if (!(percent >= 0 && percent <= 100)) {
      showError(new ApiError(422, t("rate.checkRange"), "check"), el.rateError);
      return;
    }
    body.check = percent / 100; // the API takes the share answered right, 0-1
  }
  const sessionId = rating;
  el.rateGo.disabled = true;
  try {
    await apiPost(`/api/sessions/${encodeURIComponent(sessionId)}/outcome`, body);
    remember({ rated: [...memory().rated, sessionId] });
    doneRating(t("rate.thanks"));
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      remember({ rated: [...memory().rated, sessionId] });
      doneRating(t("rate.already"));
    } else {
      showError(err, el.rateError, { rating: el.rate.querySelector("input[name=rating]") });
    }
  } finally {
    el.rateGo.disabled = false;
  }
});

el.rateSkip.addEventListener("click", () => {
  remember({ rated: [...memory().rated, rating] });
  doneRating("");
});

// -- start ----------------------------------------------------------------------------------------

if (auth) {
  initChrome(auth);
  mountMicCheck($("mic-check-open"), $("mic-check"), t);
  mountGuide("student", t);
  window.addEventListener("tw:langchange", () => {
    renderStatus();
    picker?.render();
  });
  showPanels({ ask: true });
  apiGet("/api/me").catch(() => {}); // sets the server clock for the waiting time; the welcome brings the state
  const push = new PushChannel({ token: auth.token, onMessage: onPush, onStatus: connectionLine() });
  push.connect();
  window.tw = { ...(window.tw || {}), student: { push, picker, get request() { return request; }, get view() { return view; } } };
}
