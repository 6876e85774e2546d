// The live session view: who is here, the toolbar, the board, connection and voice, mounted
// into any element.
//
//   const handle = mountSession(root, {url, token, role, i18n, onEnd, names});
//   handle.unmount();
//
// `role` is 'tutor' or 'student', or a class's 'presenter' or 'viewer' (or a Role number): the
// join token's. `i18n` is `{t(key, vars) -> string}` (or a function); a key it does not know (it
// returns the key, or nothing) falls back to English (words.js and FALLBACK below). `names`
// maps a user id to the name to show for it.
//
// Layout (top to bottom): lasting banners (#banners: the microphone blocked, with steps and a
// retry; the other side gone or not heard), the participant strip (#people: each person's name,
// microphone state, speaking level and a "weak network" badge), the toolbar, and the stage: the
// board fills all the space left (surface.js: zoom, pan, fit), with short notices as a toast
// over it (#sv-notice, with an action button #notice-action such as "Undo").
//
// Ids the browser tests rely on: canvas#ink; buttons #tool-pen, #tool-eraser, #undo, #clear,
// #page-prev, #page-next, #page-add, #zoom-in, #zoom-out, #zoom-fit, .color[data-color="#RRGGBB"],
// #mute (aria-pressed, data-blocked); #conn (data-state = the connection state, data-rtt = ms,
// data-poor, data-quality good|fair|weak, data-path webrtc|relay|none; a button that opens
// #conn-details), #speaking (data-speaking for the other party), #page-label; #people li[data-pid]
// (data-role, data-online, data-mic on|off|none, data-weak, .tw-level[data-level]; for the tutor,
// the student's entry holds button#grant-clear, aria-pressed); #banners .tw-banner[data-kind]
// (mic-blocked with #mic-retry, peer-gone with data-left true|false, peer-nomic); the
// confirmation <dialog id="confirm"> (confirm.js). window.tw gets {session, surface, audio}.
//
// Rights: what Welcome.rights do not allow is hidden: the tools without INK, the page buttons
// without PAGES, the microphone without AUDIO. Clearing: whoever holds the CLEAR right (the tutor,
// and a student the tutor lets: the switch in the student's entry of the strip sends a Grant)
// clears the whole page; everyone else clears only their own writing (Undo of each own stroke).
// Either asks first, and offers "Undo" for a while after: a whole-page clear is undone by the
// protocol's Restore (everyone's writing comes back, for everyone; the toolbar's Undo does the
// same while nothing of ours was drawn on the page since), an own-writing clear by sending the
// strokes again. The student follows the tutor's page switches; either side can still turn pages
// itself.

import { AudioLink } from './audio.js';
import { confirmAction } from './confirm.js';
import { el } from './dom.js';
import { SessionConnection } from './connection.js';
import { gradeNetwork, lossBetween } from './netgrade.js';
import { InkSurface, WIDTHS } from './surface.js';
import { WORDS_EN } from './words.js';
import { Rights, Role, roleFromLabel } from './wire/roles.js';
import { ClientState } from './wire/session/states.js';

const FALLBACK = {
  ...WORDS_EN,
  'sv.tool.pen': 'Pen',
  'sv.tool.eraser': 'Eraser',
  'sv.color': 'Colour',
  'sv.colorName.black': 'Black',
  'sv.colorName.blue': 'Blue',
  'sv.colorName.red': 'Red',
  'sv.colorName.green': 'Green',
  'sv.width': 'Line width',
  'sv.undo': 'Undo',
  'sv.pageOf': 'Page {n} of {total}',
  'sv.pagePrev': 'Previous page',
  'sv.pageNext': 'Next page',
  'sv.pageAdd': 'New page',
  'sv.mute': 'Mute microphone',
  'sv.unmute': 'Unmute microphone',
  'sv.speaking': '{who} is speaking',
  'sv.silent': '{who} is not speaking',
  'sv.tutor': 'Tutor',
  'sv.student': 'Student',
  'sv.presenter': 'Teacher',
  'sv.viewer': 'Student on stage',
  'sv.canvas': 'Shared writing page',
  'sv.toolbar': 'Writing tools',
  'sv.eraseOwnOnly': 'The eraser removes only your own writing.',
};

const COLORS = [['#1A1A1A', 'black'], ['#1565C0', 'blue'], ['#C62828', 'red'], ['#2E7D32', 'green']];
const ENDED = new Set([ClientState.CLOSED, ClientState.FAILED]);
const UNDO_CLEAR_MS = 12_000; // how long "Undo" is offered after a clear
const NOT_HEARD_MS = 12_000; // the other side online, unmuted, and no voice packet for this long
const STATS_MS = 2000; // how often the voice statistics are read for the badges
const ZOOM_STEP = 1.25;

function translator(i18n) {
  const raw = typeof i18n === 'function' ? i18n : i18n && typeof i18n.t === 'function' ? i18n.t.bind(i18n) : null;
  return (key, vars = {}) => {
    let text = null;
    try { text = raw ? raw(key, vars) : null; } catch { text = null; }
    if (typeof text !== 'string' || text === '' || text === key) {
      text = (FALLBACK[key] ?? key).replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
    }
    return text;
  };
}

// Icons: inline SVG, so there is nothing to fetch and they scale with the button.
const ICONS = {
  pen: 'M3 21l3.8-1 11-11-2.8-2.8-11 11L3 21zM16.5 4.7l2.8 2.8 1.4-1.4a1 1 0 000-1.4l-1.4-1.4a1 1 0 00-1.4 0z',
  eraser: 'M16.2 3.6l4.2 4.2a1.5 1.5 0 010 2.1L11 19.3H20v1.7H7.5l-4-4a1.5 1.5 0 010-2.1L14.1 3.6a1.5 1.5 0 012.1 0zM5 16l3.3 3.3h2.3l2.3-2.3-4.4-4.4L5 16z',
  undo: 'M12.5 8c-2.6 0-5 1-6.8 2.6L2 7v9h9l-3.6-3.6A7.5 7.5 0 0119.6 16l2.3-.8A10 10 0 0012.5 8z',
  clear: 'M6 19a2 2 0 002 2h8a2 2 0 002-2V7H6v12zM19 4h-3.5l-1-1h-5l-1 1H5v2h14V4z',
  prev: 'M15.4 7.4L14 6l-6 6 6 6 1.4-1.4L10.8 12z',
  next: 'M10 6L8.6 7.4 13.2 12l-4.6 4.6L10 18l6-6z',
  add: 'M19 13h-6v6h-2v-6H5v-2h6V5h2v6h6v2z',
  mic: 'M12 14a3 3 0 003-3V5a3 3 0 00-6 0v6a3 3 0 003 3zm5.3-3a5.3 5.3 0 01-10.6 0H5a7 7 0 006 6.9V21h2v-3.1a7 7 0 006-6.9h-1.7z',
  width: 'M3 17h18v-2H3v2zm0 3h18v-1H3v1zm0-7h18v-3H3v3zm0-9v4h18V4H3z',
  micOff: 'M19 11h-1.7c0 .7-.2 1.4-.4 2l1.2 1.2c.6-1 .9-2 .9-3.2zm-4 .2V5a3 3 0 00-5.9-.7L15 10.2v1zM4.3 3L3 4.3l6 6V11a3 3 0 004.5 2.6l1.6 1.6A5.3 5.3 0 016.7 11H5a7 7 0 006 6.9V21h2v-3.1c.9-.1 1.8-.4 2.6-.9l4.1 4.1 1.3-1.3L4.3 3z',
  zoomIn: 'M15.5 14h-.8l-.3-.3A6.5 6.5 0 109.5 16a6.5 6.5 0 004.2-1.6l.3.3v.8l5 5 1.5-1.5-5-5zm-6 0A4.5 4.5 0 1114 9.5 4.5 4.5 0 019.5 14zM12 10h-2v2H9v-2H7V9h2V7h1v2h2v1z',
  zoomOut: 'M15.5 14h-.8l-.3-.3A6.5 6.5 0 109.5 16a6.5 6.5 0 004.2-1.6l.3.3v.8l5 5 1.5-1.5-5-5zm-6 0A4.5 4.5 0 1114 9.5 4.5 4.5 0 019.5 14zM7 9h5v1H7z',
  fit: 'M3 5v4h2V5h4V3H5a2 2 0 00-2 2zm2 10H3v4a2 2 0 002 2h4v-2H5v-4zm14 4h-4v2h4a2 2 0 002-2v-4h-2v4zm0-16h-4v2h4v4h2V5a2 2 0 00-2-2z',
};

function icon(name) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

function button(id, iconName, extra = {}) {
  const b = el('button', { type: 'button', class: 'tw-btn', ...(id ? { id } : {}), ...extra });
  if (iconName) b.append(icon(iconName));
  return b;
}

/**
 * Build the session UI inside `root`, connect, start the voice. Returns
 * {session, surface, audio, unmount()}.
 */
export function mountSession(root, { url, token, role, i18n, onEnd = null, refreshToken = null, names = {} } = {}) {
  const t = translator(i18n);
  const myRole = roleFromLabel(role);
  // A class (presenter, viewers): the viewers hear and follow the presenter, the presenter hears
  // the viewer on stage; one-on-one: the other party.
  const inClass = myRole === Role.PRESENTER || myRole === Role.VIEWER;
  const leadRole = inClass ? Role.PRESENTER : Role.TUTOR;
  const otherRole = myRole === leadRole ? (inClass ? Role.VIEWER : Role.STUDENT) : leadRole;
  const whoKey = (r) => ['sv.tutor', 'sv.student', 'sv.presenter', 'sv.viewer'][r];
  const whoWord = (r) => t(['sv.who.tutor', 'sv.who.student', 'sv.who.presenter', 'sv.who.viewer'][r]);

  const session = new SessionConnection({ url, token, role: myRole, refreshToken });
  const onStage = () => {
    for (const [pid, p] of session.replica.participants) if (p.stage === 2) return pid;
    return null;
  };
  // null until the other party has joined
  const other = () => (myRole === Role.PRESENTER ? onStage() : session.replica.pidOf(otherRole));

  // --- markup --------------------------------------------------------------------------------
  const penBtn = button('tool-pen', 'pen', { 'aria-pressed': 'true' });
  const eraserBtn = button('tool-eraser', 'eraser', { 'aria-pressed': 'false' });
  const colorBtns = COLORS.map(([hex, name]) => {
    const b = el('button', { type: 'button', class: 'tw-btn color', 'aria-pressed': 'false', dataset: { color: hex, name } });
    b.style.setProperty('--swatch', hex);
    b.append(el('span', { class: 'tw-swatch', 'aria-hidden': 'true' }));
    return b;
  });
  const widthBtn = button('width', 'width');
  const undoBtn = button('undo', 'undo');
  const clearBtn = button('clear', 'clear');
  const prevBtn = button('page-prev', 'prev');
  const nextBtn = button('page-next', 'next');
  const addBtn = button('page-add', 'add');
  const pageLabel = el('span', { id: 'page-label', class: 'tw-page-label', 'aria-live': 'polite' });
  const zoomOutBtn = button('zoom-out', 'zoomOut');
  const zoomFitBtn = button('zoom-fit', 'fit', { 'aria-pressed': 'true' });
  const zoomInBtn = button('zoom-in', 'zoomIn');
  const muteBtn = button('mute', 'mic', { 'aria-pressed': 'false', 'data-blocked': 'false' });
  const conn = el('button', { type: 'button', id: 'conn', class: 'tw-conn', 'aria-expanded': 'false',
    'aria-controls': 'conn-details', 'data-state': session.state, 'data-rtt': '', 'data-poor': 'false',
    'data-quality': 'good', 'data-path': 'none' });
  const connText = el('span', { class: 'tw-conn-text', role: 'status' });
  conn.append(connText);
  const connDetails = el('div', { id: 'conn-details', class: 'tw-conn-details', hidden: '' });
  const speaking = el('span', { id: 'speaking', class: 'tw-speaking', 'data-speaking': 'false' });
  const noticeText = el('span', { class: 'tw-notice-text' });
  const noticeAction = el('button', { type: 'button', id: 'notice-action', class: 'tw-notice-action', hidden: '' });
  const notice = el('p', { id: 'sv-notice', class: 'tw-notice', role: 'status', 'aria-live': 'polite', hidden: '' },
    [noticeText, noticeAction]);
  const canvas = el('canvas', { id: 'ink', role: 'img' });
  const stage = el('div', { class: 'tw-stage' }, [canvas, notice, connDetails]);
  const banners = el('div', { id: 'banners', class: 'tw-banners' });
  const people = el('ul', { id: 'people', class: 'tw-people' });

  const toolbar = el('div', { class: 'tw-toolbar', role: 'toolbar' }, [
    el('div', { class: 'tw-group' }, [penBtn, eraserBtn]),
    el('div', { class: 'tw-group tw-colors' }, colorBtns),
    el('div', { class: 'tw-group' }, [widthBtn, undoBtn, clearBtn]),
    el('div', { class: 'tw-group tw-pages' }, [prevBtn, pageLabel, nextBtn, addBtn]),
    el('div', { class: 'tw-group tw-zoom' }, [zoomOutBtn, zoomFitBtn, zoomInBtn]),
    el('div', { class: 'tw-group tw-voice' }, [muteBtn, speaking, conn]),
  ]);
  const view = el('div', { class: 'tw-session' }, [banners, people, toolbar, stage]);
  root.replaceChildren(view);

  const surface = new InkSurface(canvas, session, { color: COLORS[0][0], width: WIDTHS[1] });
  const audio = new AudioLink(session, { peer: other });
  let widthIndex = 1;
  let noticeTimer = null;
  let noticeDo = null;
  let netLoss = null; // the voice's loss over the last stats window
  let lastCounters = null;
  let heard = { pid: null, packets: 0, since: performance.now() }; // when the other side's voice last moved
  const everOnline = new Set(); // pids seen online (a "gone" banner only for someone who was here)
  let lastClear = null; // the page our last whole-page clear was on, until we draw there again

  /** A short notice over the board; `action` {label, run} adds a button (e.g. Undo). */
  function say(text, ms = 4000, action = null) {
    noticeText.textContent = text;
    notice.hidden = !text;
    noticeDo = action ? action.run : null;
    noticeAction.hidden = !action;
    if (action) noticeAction.textContent = action.label;
    clearTimeout(noticeTimer);
    if (ms) noticeTimer = setTimeout(() => say(''), ms);
  }
  noticeAction.addEventListener('click', () => {
    const run = noticeDo;
    say('');
    run?.();
  });

  // --- lasting banners --------------------------------------------------------------------------
  const bannerOf = new Map(); // kind -> {node, render}
  function banner(kind, render) {
    let b = bannerOf.get(kind);
    if (!b) {
      const node = el('div', { class: 'tw-banner', role: 'alert', 'data-kind': kind });
      b = { node, render };
      bannerOf.set(kind, b);
      banners.append(node);
    }
    b.render = render;
    b.node.replaceChildren(...render());
  }
  function unbanner(kind) {
    const b = bannerOf.get(kind);
    if (!b) return;
    b.node.remove();
    bannerOf.delete(kind);
  }
  function rerenderBanners() {
    for (const b of bannerOf.values()) b.node.replaceChildren(...b.render());
  }

  function micBlockedBanner(still = false) {
    banner('mic-blocked', () => {
      const retry = el('button', { type: 'button', id: 'mic-retry', class: 'tw-banner-btn' });
      retry.textContent = t('sv.micBlocked.retry');
      retry.addEventListener('click', async () => {
        retry.disabled = true;
        const ok = await audio.retryMicrophone();
        if (ok) {
          unbanner('mic-blocked');
          say(t('sv.micBack'));
        } else {
          micBlockedBanner(true);
        }
        renderMute();
      });
      const steps = el('ol', {}, ['sv.micBlocked.step1', 'sv.micBlocked.step2', 'sv.micBlocked.step3']
        .map((k) => el('li', {}, [t(k)])));
      const out = [el('strong', {}, [t('sv.micBlocked.title')]), steps];
      if (still) out.push(el('p', { class: 'tw-banner-still' }, [t('sv.micBlocked.still')]));
      out.push(retry);
      return out;
    });
  }

  // --- state → markup ------------------------------------------------------------------------
  function label() {
    toolbar.setAttribute('aria-label', t('sv.toolbar'));
    canvas.setAttribute('aria-label', t('sv.canvas'));
    for (const [b, key] of [[penBtn, 'sv.tool.pen'], [eraserBtn, 'sv.tool.eraser'], [widthBtn, 'sv.width'],
      [undoBtn, 'sv.undo'], [prevBtn, 'sv.pagePrev'], [nextBtn, 'sv.pageNext'],
      [addBtn, 'sv.pageAdd'], [zoomInBtn, 'sv.zoomIn'], [zoomOutBtn, 'sv.zoomOut'], [zoomFitBtn, 'sv.zoomFit'],
      [clearBtn, clearsAll() ? 'sv.clear' : 'sv.clearOwn']]) {
      b.setAttribute('aria-label', t(key));
      b.title = t(key);
    }
    conn.title = t('sv.net.details');
    for (const b of colorBtns) {
      const text = `${t('sv.color')}: ${t(`sv.colorName.${b.dataset.name}`)}`;
      b.setAttribute('aria-label', text);
      b.title = text;
    }
    renderMute();
    renderConn();
    renderPage();
    renderSpeaking();
    renderPeople();
    rerenderBanners();
  }

  function renderTool() {
    penBtn.setAttribute('aria-pressed', String(surface.tool !== 'eraser'));
    eraserBtn.setAttribute('aria-pressed', String(surface.tool === 'eraser'));
    for (const b of colorBtns) b.setAttribute('aria-pressed', String(b.dataset.color === surface.color && surface.tool !== 'eraser'));
    widthBtn.dataset.width = String(surface.width);
    canvas.dataset.tool = surface.tool;
  }

  function renderPage() {
    const n = session.currentPage + 1;
    const total = session.pageCount;
    pageLabel.textContent = t('sv.pageOf', { n, total });
    pageLabel.dataset.page = String(session.currentPage);
    pageLabel.dataset.pages = String(total);
    prevBtn.disabled = session.currentPage <= 0;
    nextBtn.disabled = session.currentPage >= total - 1;
  }

  function renderZoom() {
    zoomFitBtn.setAttribute('aria-pressed', String(surface.view.fit));
    canvas.dataset.zoom = surface.zoom.toFixed(2);
  }

  function quality() {
    const state = session.state;
    const reconnecting = session.welcome !== null && state !== ClientState.LIVE && !ENDED.has(state);
    return gradeNetwork({ rttMs: session.rttMs, loss: netLoss, reconnecting });
  }

  function renderConn() {
    const state = session.state;
    const rtt = session.rttMs;
    const first = session.welcome === null;
    const reconnecting = !first && state !== ClientState.LIVE && !ENDED.has(state);
    const grade = quality();
    conn.dataset.state = state;
    conn.dataset.rtt = rtt === null ? '' : String(Math.round(rtt));
    conn.dataset.poor = String(grade === 'weak');
    conn.dataset.quality = grade;
    conn.dataset.path = audio.path;
    let text;
    if (state === ClientState.LIVE) text = t(`sv.net.${grade}`);
    else if (ENDED.has(state)) text = t('sv.ended');
    else if (reconnecting) text = t('sv.reconnecting');
    else text = t('sv.connecting');
    const parts = [text];
    if (state === ClientState.LIVE && audio.path === 'relay') parts.push(t('sv.net.relay'));
    connText.textContent = parts.join(' · ');
    if (!connDetails.hidden) renderDetails();
  }

  function renderDetails() {
    const lines = [];
    if (session.rttMs !== null) lines.push(t('sv.net.rtt', { ms: Math.round(session.rttMs) }));
    if (netLoss !== null) lines.push(t('sv.net.loss', { pct: Math.round(netLoss * 100) }));
    lines.push(t(audio.path === 'relay' ? 'sv.net.pathRelay' : audio.path === 'webrtc' ? 'sv.net.pathWebrtc'
      : 'sv.net.pathNone'));
    const close = el('button', { type: 'button', class: 'tw-banner-btn' }, [t('sv.dismiss')]);
    close.addEventListener('click', () => toggleDetails(false));
    connDetails.replaceChildren(el('strong', {}, [t('sv.net.details')]), ...lines.map((l) => el('p', {}, [l])), close);
  }

  function toggleDetails(open = connDetails.hidden) {
    connDetails.hidden = !open;
    conn.setAttribute('aria-expanded', String(open));
    if (open) renderDetails();
  }

  /** Hide what our rights do not allow (Welcome.rights; everything shows until the first Welcome). */
  function renderRights() {
    const ink = session.may(Rights.INK);
    for (const b of [penBtn, eraserBtn, widthBtn, undoBtn, ...colorBtns]) b.hidden = !ink;
    clearBtn.hidden = !(ink || session.may(Rights.CLEAR));
    clearBtn.dataset.all = String(clearsAll()); // the whole page, or only our own writing
    for (const b of [prevBtn, nextBtn, addBtn]) b.hidden = !session.may(Rights.PAGES);
    muteBtn.hidden = !session.may(Rights.AUDIO);
    canvas.dataset.ink = String(ink);
    label();
  }

  function renderMute() {
    const muted = audio.muted;
    const blocked = audio.micError !== null && audio.localStream === null;
    muteBtn.setAttribute('aria-pressed', String(muted || blocked));
    muteBtn.dataset.blocked = String(blocked);
    muteBtn.replaceChildren(icon(blocked || muted ? 'micOff' : 'mic'));
    const key = blocked ? 'sv.micBlockedButton' : muted ? 'sv.unmute' : 'sv.mute';
    muteBtn.setAttribute('aria-label', t(key));
    muteBtn.title = t(key);
  }

  function renderSpeaking() {
    const on = audio.speaking.remote;
    speaking.dataset.speaking = String(on);
    speaking.dataset.muted = String(session.isMuted(other()));
    speaking.dataset.online = String(session.isOnline(other()));
    speaking.setAttribute('aria-label', t(on ? 'sv.speaking' : 'sv.silent', { who: t(whoKey(otherRole)) }));
    speaking.title = speaking.getAttribute('aria-label');
  }

  /** The participant strip: me, the lead (tutor / presenter) and the other side (or the stage). */
  function shown() {
    const pids = [];
    for (const [pid, p] of session.replica.participants) {
      if (pid === session.pid || !inClass || p.role === Role.PRESENTER || p.stage === 2) pids.push(pid);
    }
    if (session.pid && !pids.includes(session.pid)) pids.unshift(session.pid);
    return pids.sort((a, b) => (a === session.pid ? -1 : b === session.pid ? 1 : a - b));
  }

  function renderPeople() {
    const items = [];
    for (const pid of shown()) {
      const p = session.replica.participant(pid);
      if (!p && pid !== session.pid) continue;
      const me = pid === session.pid;
      const role = p?.role ?? myRole;
      const online = me ? session.state === ClientState.LIVE : Boolean(p?.online);
      const mic = me ? (audio.localStream === null && audio.micError ? 'none' : audio.muted ? 'off' : 'on')
        : (p?.muted ? 'off' : peerNoMic(pid) ? 'none' : 'on');
      const level = !online ? 0 : me ? audio.localLevel : pid === other() ? audio.remoteLevel : 0;
      const weak = me ? quality() === 'weak' : (online && pid === other() && netLoss !== null && netLoss > 0.08);
      const name = names[p?.userId] ?? p?.userId ?? '';
      const li = el('li', { dataset: { pid: String(pid), role: String(role), online: String(online), mic,
        weak: String(weak), me: String(me) } });
      const who = el('span', { class: 'tw-who' }, [me ? t('sv.me') : t(whoKey(role))]);
      const nameNode = el('span', { class: 'tw-name' }, [name]);
      const micNode = el('span', { class: 'tw-mic', title: t(mic === 'on' ? 'sv.micOn' : mic === 'off' ? 'sv.micOff' : 'sv.micNone') },
        [icon(mic === 'on' ? 'mic' : 'micOff')]);
      micNode.setAttribute('aria-label', micNode.title);
      const bar = el('span', { class: 'tw-level', 'data-level': level.toFixed(3), 'aria-hidden': 'true' });
      bar.style.setProperty('--level', String(Math.min(1, Math.sqrt(level) * 2.5)));
      li.append(who, nameNode, micNode, bar);
      if (!online) li.append(el('span', { class: 'tw-badge tw-off' }, [t(p?.left ? 'sv.left' : 'sv.offline')]));
      else if (weak) li.append(el('span', { class: 'tw-badge tw-weak' }, [t('sv.weak')]));
      if (!me && mayGrant(pid)) li.append(grantSwitch(pid, p));
      items.push(li);
    }
    people.replaceChildren(...items);
  }

  /** Whether we may let `pid` clear the page: a one-on-one's tutor, for the student. */
  function mayGrant(pid) {
    return !inClass && session.may(Rights.MODERATE) && session.replica.participant(pid)?.role === otherRole;
  }

  function grantSwitch(pid, p) {
    const on = ((p?.granted ?? 0) & Rights.CLEAR) !== 0;
    const b = el('button', { type: 'button', id: 'grant-clear', class: 'tw-grant', 'aria-pressed': String(on) },
      [t(on ? 'sv.grantClear.on' : 'sv.grantClear.off')]);
    b.title = t('sv.grantClear.help');
    b.addEventListener('click', () => {
      const granted = session.replica.participant(pid)?.granted ?? 0;
      if (session.grant(pid, on ? granted & ~Rights.CLEAR : granted | Rights.CLEAR)) {
        say(t(on ? 'sv.grantClear.taken' : 'sv.grantClear.given', { who: whoWord(otherRole) }));
      }
      renderPeople();
    });
    return b;
  }

  function peerNoMic(pid) {
    return pid !== null && pid === heard.pid && session.isOnline(pid) && !session.isMuted(pid)
      && performance.now() - heard.since > NOT_HEARD_MS;
  }

  /** The other side: gone, or online and unmuted but silent on the wire for a while (no microphone). */
  function renderPeer() {
    const pid = other();
    const who = whoWord(otherRole);
    if (pid !== null && !session.isOnline(pid) && everOnline.has(pid) && session.state === ClientState.LIVE) {
      const left = Boolean(session.replica.participant(pid)?.left); // left on purpose, or the link dropped
      banner('peer-gone', () => [t(left ? 'sv.peerLeft' : 'sv.peerDropped', { who })]);
      bannerOf.get('peer-gone').node.dataset.left = String(left);
    } else {
      unbanner('peer-gone');
    }
    if (!inClass && pid !== null && peerNoMic(pid)) banner('peer-nomic', () => [t('sv.peerNoMic', { who })]);
    else unbanner('peer-nomic');
  }

  async function readStats() {
    if (!audio._started) return;
    let s;
    try { s = await audio.stats(); } catch { return; }
    const relay = s.relay;
    const onRelay = s.path === 'relay' && relay;
    const counters = onRelay ? { received: relay.packetsReceived, lost: relay.packetsLost }
      : { received: s.packetsReceived, lost: s.packetsLost };
    const loss = lossBetween(lastCounters, counters);
    lastCounters = counters;
    netLoss = loss;
    const pid = other();
    const packets = counters.received;
    if (pid !== heard.pid || packets > heard.packets || !session.isOnline(pid) || session.isMuted(pid)) {
      heard = { pid, packets, since: performance.now() };
    }
    renderConn();
    renderPeople();
    renderPeer();
  }
  const statsTimer = setInterval(readStats, STATS_MS);
  const levelTimer = setInterval(() => { // the level bars move with the voice
    for (const li of people.children) {
      const pid = Number(li.dataset.pid);
      const online = li.dataset.online === 'true';
      const level = !online ? 0 : pid === session.pid ? audio.localLevel : pid === other() ? audio.remoteLevel : 0;
      const bar = li.querySelector('.tw-level');
      if (!bar) continue;
      bar.dataset.level = level.toFixed(3);
      bar.style.setProperty('--level', String(Math.min(1, Math.sqrt(level) * 2.5)));
    }
  }, 150);

  // --- controls ------------------------------------------------------------------------------
  penBtn.addEventListener('click', () => { surface.setTool('pen'); renderTool(); });
  eraserBtn.addEventListener('click', () => { surface.setTool('eraser'); renderTool(); });
  for (const b of colorBtns) {
    b.addEventListener('click', () => {
      surface.setColor(b.dataset.color);
      surface.setTool('pen');
      renderTool();
    });
  }
  widthBtn.addEventListener('click', () => {
    widthIndex = (widthIndex + 1) % WIDTHS.length;
    surface.setWidth(WIDTHS[widthIndex]);
    renderTool();
  });
  function undoLast() {
    const pageIndex = session.currentPage;
    if (lastClear === pageIndex && session.may(Rights.CLEAR) && session.clearedLayers(pageIndex) > 0) {
      restorePage(pageIndex); // nothing of ours drawn here since our clear: undo the clear
      return;
    }
    const page = session.replica.pages[pageIndex];
    if (!page) return;
    let last = null;
    for (const s of page.values()) if (s.pid === session.pid && (last === null || s.stroke > last.stroke)) last = s;
    if (last) session.undo(last.stroke);
  }
  undoBtn.addEventListener('click', undoLast);

  /** Who holds CLEAR (the tutor, a class's presenter, a student the tutor lets) clears the whole page. */
  function clearsAll() {
    return session.may(Rights.CLEAR);
  }

  /** The undo of a whole-page clear: the protocol's Restore brings everyone's writing back. */
  function restorePage(pageIndex) {
    lastClear = null;
    if (!session.may(Rights.CLEAR) || session.clearedLayers(pageIndex) === 0 || !session.restore(pageIndex)) {
      say(t('sv.nothingToRestore'));
      return;
    }
    say(t('sv.restoredAll'));
  }

  function ownStrokes(pageIndex) {
    const page = session.replica.pages[pageIndex];
    return page ? [...page.values()].filter((s) => s.pid === session.pid && s.ended) : [];
  }

  /** Send `strokes` again as new strokes of ours (the undo of a clear). */
  function redraw(pageIndex, strokes) {
    for (const s of strokes) {
      const id = session.beginStroke({ page: pageIndex, tool: s.tool, color: s.color, width: s.width, flags: s.flags,
        deviceT0: s.deviceT0 });
      if (id === null || id === undefined) continue;
      for (let i = 0; i < s.points.length; i += 256) session.addPoints(id, s.points.slice(i, i + 256).map((p) => ({ ...p })));
      session.endStroke(id);
    }
  }

  async function clearPage() {
    const pageIndex = session.currentPage;
    const all = clearsAll();
    const mine = ownStrokes(pageIndex).map((s) => ({ tool: s.tool, color: s.color, width: s.width, flags: s.flags,
      deviceT0: s.deviceT0, points: s.points.map((p) => ({ ...p })) }));
    const any = (session.replica.pages[pageIndex]?.size ?? 0) > 0;
    if (!all && mine.length === 0) {
      say(t('sv.nothingToClear'));
      return;
    }
    const granted = all && myRole !== leadRole; // a student the tutor lets: the tutor's writing goes too
    const ok = await confirmAction({
      title: t(all ? 'sv.confirm.clear.title' : 'sv.confirm.clearOwn.title'),
      body: t(granted ? 'sv.confirm.clearGranted.body' : all ? 'sv.confirm.clear.body' : 'sv.confirm.clearOwn.body'),
      ok: t('sv.confirm.clear.ok'), cancel: t('sv.confirm.cancel'),
    });
    if (!ok) return;
    if (all && !session.may(Rights.CLEAR)) { // the grant was taken back while we were asked
      say(t('sv.grantClear.lost'));
      return;
    }
    if (all) {
      session.clear(pageIndex);
      lastClear = any ? pageIndex : null; // an empty page's clear keeps nothing to restore
      say(t('sv.cleared'), UNDO_CLEAR_MS, any ? { label: t('sv.undoClear'), run: () => restorePage(pageIndex) } : null);
      return;
    }
    for (const s of ownStrokes(pageIndex)) session.undo(s.stroke);
    say(t('sv.clearedOwn'), UNDO_CLEAR_MS, {
      label: t('sv.undoClear'),
      run: () => {
        redraw(pageIndex, mine);
        say(t('sv.restored'));
      },
    });
  }
  clearBtn.addEventListener('click', clearPage);
  prevBtn.addEventListener('click', () => session.switchPage(session.currentPage - 1));
  nextBtn.addEventListener('click', () => session.switchPage(session.currentPage + 1));
  addBtn.addEventListener('click', () => {
    const page = session.addPage();
    session.switchPage(page);
  });
  zoomInBtn.addEventListener('click', () => surface.zoomBy(ZOOM_STEP));
  zoomOutBtn.addEventListener('click', () => surface.zoomBy(1 / ZOOM_STEP));
  zoomFitBtn.addEventListener('click', () => surface.fitPage());
  surface.addEventListener('view', renderZoom);
  muteBtn.addEventListener('click', async () => {
    audio.resume();
    if (audio.localStream === null && audio.micError) { // blocked: the button asks again
      if (await audio.retryMicrophone()) {
        unbanner('mic-blocked');
        say(t('sv.micBack'));
      } else {
        micBlockedBanner(true);
      }
      renderMute();
      renderPeople();
      return;
    }
    audio.setMuted(!audio.muted);
  });
  conn.addEventListener('click', () => toggleDetails());
  const onKey = (e) => {
    if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key.toLowerCase() === 'z') {
      e.preventDefault();
      undoLast();
    } else if (e.target === canvas || e.target === view) {
      if (e.key === '+' || e.key === '=') surface.zoomBy(ZOOM_STEP);
      else if (e.key === '-') surface.zoomBy(1 / ZOOM_STEP);
      else if (e.key === '0') surface.fitPage();
    }
  };
  view.addEventListener('keydown', onKey);
  // browsers start audio only after a gesture: the first touch anywhere in the view resumes it
  const onGesture = () => audio.resume();
  view.addEventListener('pointerdown', onGesture);

  // --- session and audio events ----------------------------------------------------------------
  const ended = (detail) => {
    root.dispatchEvent(new CustomEvent('tw:session-ended', { detail, bubbles: true }));
    if (onEnd) onEnd(detail);
  };
  session.addEventListener('state', () => {
    renderConn();
    renderPeople();
    view.dataset.state = session.state;
  });
  session.addEventListener('rtt', renderConn);
  session.addEventListener('change', (e) => {
    const c = e.detail;
    // the student follows the tutor's page, a class's viewers the presenter's
    if (c.kind === 'page-switch' && myRole !== leadRole && c.pid === session.replica.pidOf(leadRole)
      && c.pid !== session.pid && c.page !== session.currentPage) {
      session.switchPage(c.page);
    }
    if (c.kind === 'page-switch' || c.kind === 'page-add' || c.kind === 'reset' || c.kind === 'rollback') renderPage();
    if (c.kind === 'begin' && c.pid === session.pid && c.page === lastClear) lastClear = null;
    if (c.kind === 'grant') renderPeople();
  });
  session.addEventListener('rights', (e) => { // the tutor let us clear the whole page, or took that back
    const had = clearBtn.dataset.all === 'true';
    renderRights();
    const has = session.may(Rights.CLEAR);
    if (had !== has) say(t(has ? 'sv.grantClear.youMay' : 'sv.grantClear.youMayNot'), 8000);
  });
  const notePresent = () => {
    for (const [pid, p] of session.replica.participants) if (p.online && pid !== session.pid) everOnline.add(pid);
  };
  session.addEventListener('welcome', () => { notePresent(); renderRights(); renderPeer(); });
  session.addEventListener('synced', () => { notePresent(); renderPage(); renderSpeaking(); renderPeople(); renderPeer(); });
  session.addEventListener('presence', (e) => { // in a class, only the presenter's comings and goings
    const d = e.detail;
    if (d.online && d.pid !== session.pid) everOnline.add(d.pid);
    if (d.role === otherRole && d.pid !== session.pid && (!inClass || otherRole === Role.PRESENTER)) {
      if (d.online && bannerOf.has('peer-gone')) say(t('sv.peerBack', { who: whoWord(otherRole) }));
      heard = { pid: d.pid, packets: heard.packets, since: performance.now() };
      renderSpeaking();
    }
    renderPeople();
    renderPeer();
  });
  session.addEventListener('roster', () => { renderPeople(); });
  session.addEventListener('mute', () => { renderSpeaking(); renderPeople(); renderPeer(); });
  session.addEventListener('class', () => { // on stage and off it: the tools, and a microphone to offer
    const audioBefore = !muteBtn.hidden;
    renderRights();
    renderSpeaking();
    renderPeople();
    if (audioBefore !== session.may(Rights.AUDIO) && audio._started) {
      // a new leg with (or without) the microphone: the old one first, or the offer would renegotiate it
      if (audio.pc) session.sendSignal({ type: 'RtcClose' });
      audio._negotiate();
    }
  });
  session.addEventListener('error', (e) => {
    const d = e.detail;
    if (d.fatal) {
      const key = { 2007: 'sv.err.ended', 3001: 'sv.err.replaced', 2001: 'sv.err.auth', 2002: 'sv.err.auth',
        2003: 'sv.err.auth', 2004: 'sv.err.auth', 2009: 'sv.err.full' }[d.code] ?? 'sv.err.other';
      say(t(key), 0);
      if (ENDED.has(session.state)) {
        ended({ code: d.code, closeCode: d.closeCode ?? session.closeCode, message: d.message });
      }
    } else if (d.code === 2011) { // SERVER_BUSY: the machine backs off and tries again by itself
      say(t('sv.busy'), 6000);
    } else if (d.code === 1022) { // NOTHING_TO_RESTORE: someone brought the page back first
      say(t('sv.nothingToRestore'));
    } else if (d.code === 1020 && d.op && (d.op.type === 'Clear' || d.op.type === 'Restore')) {
      say(t('sv.grantClear.lost')); // the grant was taken back before the server had our clear
    }
  });
  surface.addEventListener('erase-refused', () => say(t('sv.eraseOwnOnly')));
  audio.addEventListener('speaking', renderSpeaking);
  audio.addEventListener('mute', () => { renderMute(); renderPeople(); });
  audio.addEventListener('path', () => { renderConn(); });
  audio.addEventListener('mic', (e) => {
    if (e.detail.ok) unbanner('mic-blocked');
    else if (session.may(Rights.AUDIO) || !session.welcome) micBlockedBanner();
    renderMute();
    renderPeople();
  });
  audio.addEventListener('error', (e) => {
    if (!audio.micError) console.warn('tutorwire audio:', e.detail.message);
  });
  const onLang = () => label();
  window.addEventListener('tw:langchange', onLang);

  renderTool();
  renderZoom();
  label();
  session.connect().catch(() => { /* reported through the 'error' and 'state' events */ });
  audio.start().catch((exc) => console.warn('tutorwire audio:', exc));

  const handle = {
    session, surface, audio,
    unmount() {
      window.removeEventListener('tw:langchange', onLang);
      clearTimeout(noticeTimer);
      clearInterval(statsTimer);
      clearInterval(levelTimer);
      audio.stop();
      surface.destroy();
      session.close();
      root.replaceChildren();
      if (window.tw && window.tw.session === session) {
        delete window.tw.session;
        delete window.tw.surface;
        delete window.tw.audio;
      }
    },
  };
  handle.destroy = handle.unmount;
  window.tw = { ...(window.tw || {}), session, surface, audio };
  return handle;
}
