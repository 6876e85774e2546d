// The student's page: ask for help, wait (the push channel says what happens; nothing polls),
// meet the tutor in the live session view, leave, and rate the session.
//
// The page follows the student's latest request, which every (re)connect's welcome brings:
// queued -> #status waiting, offered -> offered, accepted -> matched (the session view is mounted
// with the request's join), cancelled / expired -> said once for the request asked from this
// browser. A session the student left (button#leave) is remembered in localStorage, so that a
// reload offers the rating instead of joining it again.

import {
  ApiError, PushChannel, apiGet, apiPost, clearErrors, connectionLine, initChrome, mountSessionView, noteServerTime,
  requireAuth, serverNow, showError,
} from "./api.js";
import { formatDuration, t } from "./i18n.js";

const REJOIN_WITHIN_S = 3 * 3600; // an accepted request older than this is a session long over
const RATE_WITHIN_S = 12 * 3600; // ... and after this, too old to ask for a rating

const SUGGESTIONS = {
  math: ["math.algebra.linear-equations", "math.arithmetic.fractions", "math.functions.quadratic-functions",
    "math.geometry.congruent-triangles", "math.word-problems", "math.trigonometry"],
  chinese: ["chinese.pinyin", "chinese.characters.stroke-order", "chinese.classical.poetry",
    "chinese.reading.comprehension", "chinese.writing.narrative"],
  english: ["english.phonics", "english.grammar.tenses", "english.vocabulary", "english.reading.comprehension",
    "english.writing.essay"],
  physics: ["physics.mechanics.force-and-motion", "physics.mechanics.pressure", "physics.electricity.circuits",
    "physics.optics.refraction"],
  chemistry: ["chemistry.periodic-table", "chemistry.equations.balancing", "chemistry.acids-and-bases",
    "chemistry.stoichiometry.moles"],
  biology: ["biology.cells.structure", "biology.photosynthesis", "biology.genetics.inheritance",
    "biology.human-body.circulation"],
};
const STATUS_OF = { queued: "waiting", offered: "offered", accepted: "matched", cancelled: "cancelled", expired: "expired" };

const auth = requireAuth("student");
const $ = (id) => document.getElementById(id);
const el = {
  status: $("status"), cancel: $("cancel"), notice: $("notice"),
  askPanel: $("ask-panel"), ask: $("ask"), askFields: $("ask-fields"), askGo: $("ask-go"),
  subject: $("subject"), grade: $("grade"), kps: $("kps"), text: $("text"), favourite: $("favourite"),
  direct: $("direct"), suggestions: $("kp-suggestions"), bodyError: $("err-body"),
  sessionPanel: $("session-panel"), session: $("session"), leave: $("leave"),
  ratePanel: $("rate-panel"), rate: $("rate"), check: $("check"), rateGo: $("rate-go"), rateSkip: $("rate-skip"),
  rateError: $("rate-error"),
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

function showPanels({ ask, askEnabled = true, session = false, rate = false }) {
  el.askPanel.hidden = !ask;
  el.askFields.disabled = !askEnabled;
  el.sessionPanel.hidden = !session;
  el.ratePanel.hidden = !rate;
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
      if (!m.left.includes(sessionId) && age < REJOIN_WITHIN_S) {
        setStatus("matched");
        if (join) enterSession(join);
        else showPanels({ ask: false, session: Boolean(view || mounting) }); // the matched push brings the join
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

/** The student left, or the session view says it is over: unmount and ask for a rating. */
function finishSession(sessionId) {
  const id = leaveSession() ?? sessionId;
  if (id && !memory().left.includes(id)) remember({ left: [...memory().left, id] });
  setStatus("ended");
  askForRating(id);
}

function askForRating(sessionId) {
  if (rating === sessionId && !el.ratePanel.hidden) return; // a reconnect: keep what is being typed
  rating = sessionId;
  clearErrors(el.rate);
  el.rate.reset();
  showPanels({ ask: false, session: false, rate: true });
  if (statusState !== "ended") setStatus("ended");
}

function doneRating(message) {
  rating = null;
  setStatus("");
  showPanels({ ask: true });
  showNotice(message);
}

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
      // The tutor ended the session: move on to rating it, as if the student had left.
      if (view?.sessionId === msg.session_id || request?.session_id === msg.session_id) {
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

function renderSuggestions() {
  const list = SUGGESTIONS[el.subject.value] || [];
  el.suggestions.replaceChildren(...list.map((kp) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "kp-suggestion";
    button.dataset.kp = kp;
    button.setAttribute("aria-label", t("ask.addKp", { kp }));
    const code = document.createElement("code");
    code.textContent = kp;
    button.append("+ ", code);
    button.addEventListener("click", () => addKnowledgePoint(kp));
    li.append(button);
    return li;
  }));
}

function splitKps(value) {
  return value.split(/[,，;；\s]+/).map((s) => s.trim().toLowerCase()).filter(Boolean);
}

function addKnowledgePoint(kp) {
  const kps = splitKps(el.kps.value);
  if (!kps.includes(kp)) kps.push(kp);
  el.kps.value = kps.join(", ");
  el.kps.focus();
}

function gradeValue(raw) {
  const text = raw.trim();
  return /^\d+$/.test(text) ? Number(text) : text === "" ? null : text; // the server judges the rest
}

el.subject.addEventListener("change", renderSuggestions);

el.ask.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(el.ask);
  showNotice("");
  const favourite = el.favourite.value.trim();
  const body = {
    subject: el.subject.value,
    grade: gradeValue(el.grade.value),
    knowledge_points: splitKps(el.kps.value),
    text: el.text.value.trim(),
    favourite: favourite || null,
    direct: el.direct.checked,
  };
  el.askGo.disabled = true;
  el.askGo.textContent = t("ask.sending");
  try {
    const sent = Date.now();
    const created = await apiPost("/api/requests", body);
    noteServerTime(created.created_at, sent, Date.now()); // the waiting time counts from it
    remember({ asked: created.request_id });
    request = null;
    follow(created);
  } catch (err) {
    showError(err, el.bodyError, { knowledge_points: el.kps });
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

el.leave.addEventListener("click", () => finishSession(view?.sessionId ?? request?.session_id));

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
  renderSuggestions();
  window.addEventListener("tw:langchange", () => {
    renderStatus();
    renderSuggestions();
  });
  showPanels({ ask: true });
  apiGet("/api/me").catch(() => {}); // sets the server clock for the waiting time; the welcome brings the state
  const push = new PushChannel({ token: auth.token, onMessage: onPush, onStatus: connectionLine() });
  push.connect();
  window.tw = { ...(window.tw || {}), student: { push, get request() { return request; }, get view() { return view; } } };
}
