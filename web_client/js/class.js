// A live class (/class/{id}): the teacher presents, the students watch, raise hands and ask.
//
// The class comes from GET /api/classes/{id}; "Join" (or "Start the class" for its teacher)
// takes a seat with POST /api/classes/{id}/join and mounts the live session view (sessionview.js)
// as presenter or viewer. Beside the board, the floor, read from the view's replica (hands and
// stage in each participant's roster entry, questions as they came) and redrawn on the session's
// 'class', 'presence', 'roster', 'welcome' and 'synced' events:
//   the teacher: the stage (send back, mute), the raised hands in order (invite to the stage,
//   lower, mute, remove), the questions, lower all hands, end the class, the attendance count;
//   a student: raise or lower the hand, ask in writing, accept or decline an invitation to the
//   stage, leave it.
// Ids the browser tests use: #class-join, #attendance[data-count], #hand[aria-pressed],
// #question, #ask-go, #stage-invite, #stage-accept, #stage-on, #stage-leave, #hands li[data-user]
// (.invite, .lower, .mute, .remove), #stage-list li[data-user] (.send-back, .mute), #questions li,
// #lower-all, #end-class, #class-ended, #use-pad and #pad-code (the writing pad's pairing); the view's own (canvas#ink, #conn, ...). window.tw.classView
// is the mounted view's handle.

import { ApiError, apiGet, apiPost, initChrome, mountSessionView, requireAuth } from "./api.js";
import { errorText, formatDateTime, t } from "./i18n.js";
import { ModAction, StageAction } from "./wire/messages.js";
import { Role } from "./wire/roles.js";
import { mountPadPairing } from "./tutorpad.js";

const auth = requireAuth("tutor", "student");
const $ = (id) => document.getElementById(id);
const classId = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop() || "");
let record = null; // the class as the API gave it
let view = null; // {handle, unmount} once joined
let ended = false;
let currentJoin = null; // {session_id, token} of our seat, for pairing a writing pad

function showError(err, slot = $("class-error")) {
  slot.textContent = err instanceof ApiError || err?.status !== undefined ? errorText(err) : String(err?.message ?? err);
  slot.hidden = false;
}

function isTeacher() {
  return record !== null && auth.role === "tutor" && record.teacher_id === auth.user;
}

// -- the class before joining ------------------------------------------------------------------

function renderRecord() {
  if (record === null) return;
  $("class-title").textContent = record.title;
  document.title = `${record.title} · ${t("class.pageTitle")}`;
  $("class-meta").textContent = t("class.meta", {
    subject: t(`subject.${record.subject}`) === `subject.${record.subject}` ? record.subject : t(`subject.${record.subject}`),
    grade: record.grade, when: formatDateTime(record.starts_unix), minutes: record.duration_min,
    state: t(`class.state.${record.state}`),
  });
  if (isTeacher()) {
    $("share").hidden = false;
    $("join-link").value = new URL(record.join_path, location.origin).href;
    $("class-code").textContent = record.code;
  }
  const open = record.state === "scheduled" || record.state === "live";
  $("join-panel").hidden = view !== null || !open || ended;
  $("class-join").textContent = t(isTeacher() ? "class.start" : "class.join");
  $("join-hint").textContent = t(isTeacher() ? "class.startHint" : "class.joinHint");
  if (!open && view === null) showEnded(t(`class.over.${record.state}`));
}

function showEnded(text) {
  ended = true;
  const box = $("class-ended");
  box.textContent = text;
  box.hidden = false;
  $("join-panel").hidden = true;
}

async function load() {
  try {
    record = await apiGet(`/api/classes/${encodeURIComponent(classId)}`);
  } catch (err) {
    showError(err);
    return;
  }
  renderRecord();
}

async function join() {
  $("class-error").hidden = true;
  $("class-join").disabled = true;
  let seat;
  try {
    seat = await apiPost(`/api/classes/${encodeURIComponent(classId)}/join`);
  } catch (err) {
    showError(err);
    $("class-join").disabled = false;
    return;
  }
  record = seat.class;
  $("join-panel").hidden = true;
  $("class-live").hidden = false;
  const refreshToken = async () => (await apiPost(`/api/classes/${encodeURIComponent(classId)}/join`)).token;
  view = await mountSessionView($("session"), { token: seat.token, ws_path: seat.ws_path, ws_url: seat.ws_url, session_id: seat.room_id },
    seat.role, { onEnd: onEnd, refreshToken });
  window.tw = { ...(window.tw || {}), classView: view.handle };
  const session = view.handle.session;
  for (const type of ["class", "presence", "roster", "welcome", "synced", "mute"]) {
    session.addEventListener(type, scheduleRender);
  }
  session.addEventListener("class", (e) => {
    const op = e.detail.op;
    if (op.type === "Moderate" && op.action === ModAction.REMOVE && op.pid === session.pid) removedMe = true;
  });
  session.addEventListener("error", (e) => {
    const op = e.detail.op?.type;
    if (op === "Question") showError({ status: 400, sentence: e.detail.message }, $("ask-error"));
    else if (op === "Stage" || op === "Moderate") showError({ status: 400, sentence: e.detail.message }, $("moderate-error"));
  });
  currentJoin = { session_id: seat.room_id, get token() { return session.token; } };
  $("use-pad").hidden = seat.role !== "presenter"; // the pen gateway on the teacher's PC, as for a tutor
  $("viewer-panel").hidden = seat.role !== "viewer";
  $("presenter-panel").hidden = seat.role !== "presenter";
  renderRecord();
  render();
}

let removedMe = false; // the presenter's Moderate REMOVE of us came (its 2007 follows)

function onEnd(detail) {
  // removed now (the event came first), or refused on a rejoin after it (the server says why)
  const removed = !isTeacher() && (removedMe || /removed/.test(detail?.message ?? ""));
  view?.unmount();
  view = null;
  $("class-live").hidden = true;
  showEnded(t(removed ? "class.endedForYou" : "class.over.ended"));
}

// -- the floor -----------------------------------------------------------------------------------

let pending = false;
function scheduleRender() { // many events can come at once (a catch-up): draw once a frame
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    render();
  });
}

function button(cls, key, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = t(key);
  b.addEventListener("click", onClick);
  return b;
}

function item(pid, user, extra = []) {
  const li = document.createElement("li");
  li.dataset.pid = String(pid);
  li.dataset.user = user;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = user;
  li.append(who, ...extra);
  return li;
}

function render() {
  if (view === null) return;
  const session = view.handle.session;
  const replica = session.replica;
  const people = [...replica.participants.entries()];
  const here = people.filter(([, p]) => p.role === Role.VIEWER && p.online).length;
  $("attendance").dataset.count = String(here);
  $("attendance").textContent = t("class.attendance", { n: here });
  if (session.role === Role.PRESENTER) renderPresenter(session, people);
  else renderViewer(session, replica.participant(session.pid));
}

function renderViewer(session, me) {
  const raised = Boolean(me && me.handMs > 0);
  const hand = $("hand");
  hand.setAttribute("aria-pressed", String(raised));
  hand.textContent = t(raised ? "class.lowerHand" : "class.raiseHand");
  const stage = me?.stage ?? 0;
  $("stage-invite").hidden = stage !== 1;
  $("stage-on").hidden = stage !== 2;
  hand.hidden = stage === 2;
}

function renderPresenter(session, people) {
  const name = (pid) => session.replica.participant(pid)?.userId || `#${pid}`;
  const onStage = people.filter(([, p]) => p.role === Role.VIEWER && p.stage > 0);
  $("stage-list").replaceChildren(...onStage.map(([pid, p]) => {
    const state = document.createElement("span");
    state.className = "hint";
    state.textContent = ` ${t(p.stage === 2 ? "class.stateOn" : "class.stateInvited")}`;
    const actions = document.createElement("div");
    actions.className = "actions";
    actions.append(
      button("send-back", p.stage === 2 ? "class.sendBack" : "class.withdraw", () => session.stage(pid, StageAction.LEAVE)),
      muteButton(session, pid, p),
    );
    return item(pid, p.userId, [state, actions]);
  }));
  $("stage-empty").hidden = onStage.length > 0;

  const hands = people.filter(([, p]) => p.handMs > 0 && p.online).sort(([a, p], [b, q]) => p.handMs - q.handMs || a - b);
  $("hands-count").textContent = hands.length ? `(${hands.length})` : "";
  $("hands").replaceChildren(...hands.map(([pid, p]) => {
    const actions = document.createElement("div");
    actions.className = "actions";
    actions.append(
      button("invite", "class.invite", () => session.stage(pid, StageAction.INVITE)),
      button("lower", "class.lower", () => session.moderate(pid, ModAction.LOWER_HAND)),
      muteButton(session, pid, p),
      button("remove danger", "class.remove", () => {
        if (confirm(t("class.removeConfirm", { user: p.userId }))) session.moderate(pid, ModAction.REMOVE);
      }),
    );
    return item(pid, p.userId, [actions]);
  }));
  $("lower-all").disabled = hands.length === 0;

  const questions = session.replica.questions;
  $("questions").replaceChildren(...questions.map((q) => {
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = q.text;
    const p = session.replica.participant(q.pid);
    const actions = document.createElement("div");
    actions.className = "actions";
    if (p && p.online && p.stage === 0) {
      actions.append(button("invite", "class.invite", () => session.stage(q.pid, StageAction.INVITE)));
    }
    return item(q.pid, name(q.pid), [text, actions]);
  }));
}

function muteButton(session, pid, p) {
  return button("mute", p.muted ? "class.unmute" : "class.mute",
    () => session.moderate(pid, p.muted ? ModAction.UNMUTE : ModAction.MUTE));
}

// -- controls ------------------------------------------------------------------------------------

function mine() {
  return view?.handle.session ?? null;
}

$("class-join").addEventListener("click", join);
mountPadPairing($("use-pad"), $("pad-code"), () => currentJoin,
  async () => (await apiPost(`/api/classes/${encodeURIComponent(classId)}/join`)).token);
$("hand").addEventListener("click", () => {
  const session = mine();
  if (!session) return;
  const me = session.replica.participant(session.pid);
  session.hand(!(me && me.handMs > 0));
});
$("ask-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const session = mine();
  const text = $("question").value.trim();
  $("ask-error").hidden = true;
  if (!session || !text) return;
  if (session.ask(text)) $("question").value = "";
  else showError({ status: 400, sentence: t("class.askNotSent") }, $("ask-error"));
});
$("stage-accept").addEventListener("click", () => {
  const session = mine();
  view?.handle.audio?.resume();
  session?.stage(session.pid, StageAction.ACCEPT);
});
$("stage-decline").addEventListener("click", () => { const s = mine(); s?.stage(s.pid, StageAction.LEAVE); });
$("stage-leave").addEventListener("click", () => { const s = mine(); s?.stage(s.pid, StageAction.LEAVE); });
$("lower-all").addEventListener("click", () => mine()?.moderate(0, ModAction.LOWER_ALL_HANDS));
$("end-class").addEventListener("click", async () => {
  if (!confirm(t("class.endConfirm"))) return;
  try {
    record = await apiPost(`/api/classes/${encodeURIComponent(classId)}/end`);
  } catch (err) {
    showError(err, $("moderate-error"));
  }
});
$("join-link").addEventListener("focus", (e) => e.target.select());

if (auth) {
  initChrome(auth);
  window.addEventListener("tw:langchange", () => { renderRecord(); render(); });
  load();
}
