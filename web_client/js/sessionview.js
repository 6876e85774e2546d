// The live session view: toolbar, ink surface, connection and voice, mounted into any element.
//
//   const handle = mountSession(root, {url, token, role, i18n, onEnd});
//   handle.unmount();
//
// `role` is 'tutor' or 'student', or a class's 'presenter' or 'viewer' (or a Role number): the join token's. `i18n` is `{t(key, vars) -> string}` (or a function);
// a key it does not know (it returns the key, or nothing) falls back to English here.
// Keys used (English fallbacks in FALLBACK below):
//   sv.connecting, sv.connected, sv.reconnecting, sv.ended, sv.error, sv.poor, sv.rtt,
//   sv.tool.pen, sv.tool.eraser, sv.color, sv.colorName.black, sv.colorName.blue, sv.colorName.red,
//   sv.colorName.green, sv.width, sv.undo, sv.clear, sv.pageOf, sv.pagePrev, sv.pageNext, sv.pageAdd,
//   sv.mute, sv.unmute, sv.micDenied, sv.speaking, sv.silent, sv.peerOnline, sv.peerOffline,
//   sv.tutor, sv.student, sv.presenter, sv.viewer, sv.canvas, sv.toolbar, sv.eraseOwnOnly
//
// Ids the browser tests rely on: canvas#ink; buttons #tool-pen, #tool-eraser, #undo, #clear,
// #page-prev, #page-next, #page-add, .color[data-color="#RRGGBB"], #mute (aria-pressed);
// #conn (data-state = the connection state, data-rtt = ms, data-poor), #speaking (data-speaking
// for the other party), #page-label. window.tw gets {session, surface, audio}.
//
// The other party is the participant of the other role in the roster (a one-on-one room has a
// tutor and a student). What Welcome.rights do not allow is hidden: the tools without INK, the
// page buttons without PAGES, clearing without CLEAR, the microphone without AUDIO. The student
// follows the tutor's page switches; either side can still turn pages itself.

import { AudioLink } from './audio.js';
import { SessionConnection } from './connection.js';
import { InkSurface, WIDTHS } from './surface.js';
import { Rights, Role, roleFromLabel } from './wire/roles.js';
import { ClientState } from './wire/session/states.js';

const FALLBACK = {
  'sv.connecting': 'Connecting to the session…',
  'sv.connected': 'Connected',
  'sv.reconnecting': 'Connection lost; reconnecting…',
  'sv.ended': 'The session has ended.',
  'sv.error': 'Session error: {msg}',
  'sv.poor': 'Poor connection',
  'sv.rtt': '{ms} ms',
  'sv.tool.pen': 'Pen',
  'sv.tool.eraser': 'Eraser',
  'sv.color': 'Colour',
  'sv.colorName.black': 'Black',
  'sv.colorName.blue': 'Blue',
  'sv.colorName.red': 'Red',
  'sv.colorName.green': 'Green',
  'sv.width': 'Line width',
  'sv.undo': 'Undo',
  'sv.clear': 'Clear the page',
  'sv.pageOf': 'Page {n} of {total}',
  'sv.pagePrev': 'Previous page',
  'sv.pageNext': 'Next page',
  'sv.pageAdd': 'New page',
  'sv.mute': 'Mute microphone',
  'sv.unmute': 'Unmute microphone',
  'sv.micDenied': 'The microphone is blocked. Allow it in the browser to talk.',
  'sv.speaking': '{who} is speaking',
  'sv.silent': '{who} is not speaking',
  'sv.peerOnline': '{who} is here',
  'sv.peerOffline': '{who} has left',
  'sv.tutor': 'Tutor',
  'sv.student': 'Student',
  'sv.presenter': 'Teacher',
  'sv.viewer': 'Student on stage',
  'sv.canvas': 'Shared writing page',
  'sv.toolbar': 'Writing tools',
  'sv.eraseOwnOnly': 'The eraser removes only your own writing.',
};

const COLORS = [['#1A1A1A', 'black'], ['#1565C0', 'blue'], ['#C62828', 'red'], ['#2E7D32', 'green']];
const POOR_RTT_MS = 300;
const ENDED = new Set([ClientState.CLOSED, ClientState.FAILED]);

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

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
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
export function mountSession(root, { url, token, role, i18n, onEnd = null, refreshToken = null } = {}) {
  const t = translator(i18n);
  const myRole = roleFromLabel(role);
  // A class (presenter, viewers): the viewers hear and follow the presenter, the presenter hears
  // the viewer on stage; one-on-one: the other party.
  const inClass = myRole === Role.PRESENTER || myRole === Role.VIEWER;
  const leadRole = inClass ? Role.PRESENTER : Role.TUTOR;
  const otherRole = myRole === leadRole ? (inClass ? Role.VIEWER : Role.STUDENT) : leadRole;
  const whoKey = (r) => ['sv.tutor', 'sv.student', 'sv.presenter', 'sv.viewer'][r];

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
  const muteBtn = button('mute', 'mic', { 'aria-pressed': 'false' });
  const conn = el('span', { id: 'conn', class: 'tw-conn', role: 'status', 'data-state': session.state, 'data-rtt': '',
    'data-poor': 'false' });
  const speaking = el('span', { id: 'speaking', class: 'tw-speaking', 'data-speaking': 'false' });
  const notice = el('p', { id: 'notice', class: 'tw-notice', role: 'status', 'aria-live': 'polite' });
  const canvas = el('canvas', { id: 'ink', role: 'img' });
  const stage = el('div', { class: 'tw-stage' }, [canvas]);

  const toolbar = el('div', { class: 'tw-toolbar', role: 'toolbar' }, [
    el('div', { class: 'tw-group' }, [penBtn, eraserBtn]),
    el('div', { class: 'tw-group tw-colors' }, colorBtns),
    el('div', { class: 'tw-group' }, [widthBtn, undoBtn, clearBtn]),
    el('div', { class: 'tw-group tw-pages' }, [prevBtn, pageLabel, nextBtn, addBtn]),
    el('div', { class: 'tw-group tw-voice' }, [muteBtn, speaking, conn]),
  ]);
  const view = el('div', { class: 'tw-session' }, [toolbar, notice, stage]);
  root.replaceChildren(view);

  const surface = new InkSurface(canvas, session, { color: COLORS[0][0], width: WIDTHS[1] });
  const audio = new AudioLink(session, { peer: other });
  let widthIndex = 1;
  let noticeTimer = null;

  function say(text, ms = 4000) {
    notice.textContent = text;
    clearTimeout(noticeTimer);
    if (ms) noticeTimer = setTimeout(() => { notice.textContent = ''; }, ms);
  }

  // --- state → markup ------------------------------------------------------------------------
  function label() {
    toolbar.setAttribute('aria-label', t('sv.toolbar'));
    canvas.setAttribute('aria-label', t('sv.canvas'));
    for (const [b, key] of [[penBtn, 'sv.tool.pen'], [eraserBtn, 'sv.tool.eraser'], [widthBtn, 'sv.width'],
      [undoBtn, 'sv.undo'], [clearBtn, 'sv.clear'], [prevBtn, 'sv.pagePrev'], [nextBtn, 'sv.pageNext'],
      [addBtn, 'sv.pageAdd']]) {
      b.setAttribute('aria-label', t(key));
      b.title = t(key);
    }
    for (const b of colorBtns) {
      const text = `${t('sv.color')}: ${t(`sv.colorName.${b.dataset.name}`)}`;
      b.setAttribute('aria-label', text);
      b.title = text;
    }
    renderMute();
    renderConn();
    renderPage();
    renderSpeaking();
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

  function renderConn() {
    const state = session.state;
    const rtt = session.rttMs;
    const first = session.welcome === null;
    const reconnecting = !first && state !== ClientState.LIVE && !ENDED.has(state);
    const poor = reconnecting || (state === ClientState.LIVE && rtt !== null && rtt > POOR_RTT_MS);
    conn.dataset.state = state;
    conn.dataset.rtt = rtt === null ? '' : String(Math.round(rtt));
    conn.dataset.poor = String(poor);
    let text = t('sv.connecting');
    if (state === ClientState.LIVE) text = t('sv.connected');
    else if (ENDED.has(state)) text = t('sv.ended');
    else if (reconnecting) text = t('sv.reconnecting');
    const parts = [text];
    if (state === 'live' && rtt !== null) parts.push(t('sv.rtt', { ms: Math.round(rtt) }));
    if (state === 'live' && rtt !== null && rtt > POOR_RTT_MS) parts.push(t('sv.poor'));
    conn.textContent = parts.join(' · ');
  }

  /** Hide what our rights do not allow (Welcome.rights; everything shows until the first Welcome). */
  function renderRights() {
    const ink = session.may(Rights.INK);
    for (const b of [penBtn, eraserBtn, widthBtn, undoBtn, ...colorBtns]) b.hidden = !ink;
    clearBtn.hidden = !session.may(Rights.CLEAR);
    for (const b of [prevBtn, nextBtn, addBtn]) b.hidden = !session.may(Rights.PAGES);
    muteBtn.hidden = !session.may(Rights.AUDIO);
    canvas.dataset.ink = String(ink);
  }

  function renderMute() {
    const muted = audio.muted;
    muteBtn.setAttribute('aria-pressed', String(muted));
    const key = muted ? 'sv.unmute' : 'sv.mute';
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
    const page = session.replica.pages[session.currentPage];
    if (!page) return;
    let last = null;
    for (const s of page.values()) if (s.pid === session.pid && (last === null || s.stroke > last.stroke)) last = s;
    if (last) session.undo(last.stroke);
  }
  undoBtn.addEventListener('click', undoLast);
  clearBtn.addEventListener('click', () => session.clear(session.currentPage));
  prevBtn.addEventListener('click', () => session.switchPage(session.currentPage - 1));
  nextBtn.addEventListener('click', () => session.switchPage(session.currentPage + 1));
  addBtn.addEventListener('click', () => {
    const page = session.addPage();
    session.switchPage(page);
  });
  muteBtn.addEventListener('click', () => {
    audio.resume();
    audio.setMuted(!audio.muted);
  });
  const onKey = (e) => {
    if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key.toLowerCase() === 'z') {
      e.preventDefault();
      undoLast();
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
  });
  session.addEventListener('welcome', renderRights);
  session.addEventListener('synced', () => { renderPage(); renderSpeaking(); });
  session.addEventListener('presence', (e) => { // in a class, only the presenter's comings and goings
    if (e.detail.role === otherRole && e.detail.pid !== session.pid && (!inClass || otherRole === Role.PRESENTER)) {
      say(t(e.detail.online ? 'sv.peerOnline' : 'sv.peerOffline', { who: t(whoKey(otherRole)) }));
      renderSpeaking();
    }
  });
  session.addEventListener('mute', () => { renderSpeaking(); });
  session.addEventListener('class', (e) => { // on stage and off it: the tools, and a microphone to offer
    const audioBefore = !muteBtn.hidden;
    renderRights();
    renderSpeaking();
    if (audioBefore !== session.may(Rights.AUDIO) && audio._started) {
      // a new leg with (or without) the microphone: the old one first, or the offer would renegotiate it
      if (audio.pc) session.sendSignal({ type: 'RtcClose' });
      audio._negotiate();
    }
  });
  session.addEventListener('error', (e) => {
    const d = e.detail;
    if (d.fatal) {
      say(t('sv.error', { msg: d.message }), 0);
      if (ENDED.has(session.state)) {
        ended({ code: d.code, closeCode: d.closeCode ?? session.closeCode, message: d.message });
      }
    }
  });
  surface.addEventListener('erase-refused', () => say(t('sv.eraseOwnOnly')));
  audio.addEventListener('speaking', renderSpeaking);
  audio.addEventListener('mute', renderMute);
  audio.addEventListener('error', (e) => {
    if (audio.micError) say(t('sv.micDenied'), 8000);
    else console.warn('tutorwire audio:', e.detail.message);
  });
  const onLang = () => label();
  window.addEventListener('tw:langchange', onLang);

  renderTool();
  label();
  session.connect().catch(() => { /* reported through the 'error' and 'state' events */ });
  audio.start().catch((exc) => console.warn('tutorwire audio:', exc));

  const handle = {
    session, surface, audio,
    unmount() {
      window.removeEventListener('tw:langchange', onLang);
      clearTimeout(noticeTimer);
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
