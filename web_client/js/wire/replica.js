// A client's copy of a session's pages (wire/replica.py): apply what the server sends, in order.
//
// `pages[i]` is a Map of strokes in drawing order, keyed by participant and stroke id; a stroke is
// `{pid, stroke, page, tool, color, width, flags, deviceT0, points, state, ended}` with
// `points` `{x, y, t, pressure, tiltX, tiltY}`. `participants` maps a pid to
// `{userId, role, online, muted, currentPage, handMs, stage, granted, left}`, from Welcome's roster
// and presence events (`granted`: rights granted beyond the role's; `left`: offline because it left,
// not because its link dropped). `cleared.get(i)` is page i's cleared layers (Maps, oldest first): a
// Clear pushes the page's strokes as the newest, a Restore puts the newest back beneath the page's
// strokes (the page's Map stays the same object throughout).
// `applyLocal` applies our own ops, which the server does not echo, and returns the change (what
// the views redraw, and what a rollback undoes).
//
// Our ops are applied when we make them, before the server has sequenced them; another
// participant's event that arrives while ours are unacknowledged was sequenced before them (the
// server sends us every event it sequenced before our op ahead of that op's Ack). Ink of different
// strokes commutes, but a Clear, a Restore and an Undo do not: `rebase` takes our unacknowledged
// page ops off, applies the event beneath them, and puts them back (a stroke another cleared
// while it was in our Clear's layer, or another's points for a stroke our Clear or Undo took),
// so the pages stay what the room has, in the room's order, and no event is left unappliable.

import { ErrorCode, ProtocolError } from './errors.js';
import { PointState, decodePoints } from './ink.js';
import { CLEAR_LAYERS_KEPT } from './limits.js';
import { CatchUp, ModAction } from './messages.js';
import { Role } from './roles.js';

const CLASS_OPS = new Set(['Hand', 'Question', 'Stage', 'Moderate']);
// ops that do not commute with the events of others: while one of ours is unacknowledged, or
// when the event is one, the event is applied beneath our unacknowledged ops (`rebase`)
const ORDERED_OPS = new Set(['Clear', 'Restore', 'Undo']);
// our unacknowledged ops that a rebase takes off the pages and puts back (points and ends stay
// in their stroke objects, which persist)
const REBASED_OPS = new Set(['StrokeBegin', 'Clear', 'Restore', 'Undo']);
const PAGE_OPS = new Set(['StrokeBegin', 'StrokePoints', 'StrokeEnd', 'Clear', 'Restore', 'Undo']);

/** The key of a stroke in a page's Map (stroke ids are per participant). */
export function strokeKey(pid, stroke) {
  return pid * 2 ** 32 + stroke;
}

export class Replica {
  /** `pid` is this client's participant id: 0 until the first Welcome gives it. */
  constructor(pid = 0) {
    this.pid = pid;
    this.lastSeq = 0;
    this.epoch = 0; // the room epoch lastSeq belongs to
    this.pages = [new Map()];
    this.cleared = new Map(); // page -> its cleared layers, oldest first
    this.participants = new Map();
    this.questions = []; // a class: {pid, text} as they came
    this.awaitingPages = new Set(); // snapshot pages announced but not yet received
    this._partial = null; // {page, part, seq, strokes} while a page in parts is arriving
    this.maxStrokeId = new Map(); // pid -> the highest stroke id seen (ids are never reused)
    this.rebases = 0; // events applied beneath our unacknowledged ops (`rebase`)
  }

  /** The id of the (first) participant with `role`, or null if the replica knows none. */
  pidOf(role) {
    for (const [pid, p] of this.participants) if (p.role === role) return pid;
    return null;
  }

  participant(pid) {
    return this.participants.get(pid) ?? null;
  }

  currentPage(pid) {
    return this.participants.get(pid)?.currentPage ?? 0;
  }

  strokes(pid = null) {
    const out = [];
    for (const page of this.pages) for (const s of page.values()) if (pid === null || s.pid === pid) out.push(s);
    return out;
  }

  find(pid, stroke) {
    const key = strokeKey(pid, stroke);
    for (const page of this.pages) {
      const s = page.get(key);
      if (s !== undefined) return s;
    }
    return undefined;
  }

  /** The stroke on a page or in a cleared layer (newest first), or undefined. */
  findAnywhere(pid, stroke) {
    const found = this.find(pid, stroke);
    if (found !== undefined) return found;
    const key = strokeKey(pid, stroke);
    for (const layers of this.cleared.values()) {
      for (let i = layers.length - 1; i >= 0; i--) {
        const s = layers[i].get(key);
        if (s !== undefined) return s;
      }
    }
    return undefined;
  }

  /** `rebuild`: the pages are rebuilt from the catch-up (a snapshot, or a replay from seq 0). */
  welcome(w, rebuild) {
    this.pid = w.pid;
    this.epoch = w.epoch;
    this.participants = new Map(w.roster.map((e) => [e.pid, {
      userId: e.userId, role: e.role, online: e.online, muted: e.muted, currentPage: e.currentPage,
      handMs: e.handMs ?? 0, stage: e.stage ?? 0, granted: e.granted ?? 0, left: false,
    }]));
    this._partial = null;
    if (w.mode === CatchUp.SNAPSHOT) {
      this.pages = Array.from({ length: w.pageCount }, () => new Map());
      this.cleared = new Map();
      this.awaitingPages = new Set(this.pages.keys());
      // The pages are gone until the snapshot is whole: a drop before then must resume from
      // nothing, never replay onto empty pages.
      this.lastSeq = 0;
    } else if (rebuild) { // joined from seq 0: the replay is every event
      this.pages = [new Map()];
      this.cleared = new Map();
      this.awaitingPages = new Set();
      this.lastSeq = 0;
    }
  }

  /**
   * Apply one Snapshot: a whole page, or one part of it. Part 0 replaces the page; a later part
   * adds its strokes, and a stroke already there from an earlier part continues (points
   * appended, `ended` that of the latest piece). The page is whole once its last part has
   * arrived. A refused one (ProtocolError) leaves the replica as it was.
   */
  snapshot(snap) {
    let page;
    let layers; // key -> layer, for the strokes of the page's cleared layers
    const p = this._partial;
    if (snap.part === 0) [page, layers] = [new Map(), new Map()];
    else if (p !== null && p.page === snap.page && p.part === snap.part && p.seq === snap.seq) {
      [page, layers] = [new Map(p.strokes), new Map(p.layers)];
    } else {
      throw new ProtocolError(ErrorCode.BAD_FRAME,
        `snapshot part ${snap.part} of page ${snap.page} does not follow the part before it`);
    }
    for (const s of snap.strokes) { // decode it all first: a refused snapshot leaves the replica as it was
      const key = strokeKey(s.pid, s.stroke);
      const before = snap.part ? page.get(key) : undefined;
      const stroke = before === undefined
        ? this._newStroke(s.pid, s.stroke, snap.page, s.tool, s.color, s.width, s.flags, s.deviceT0)
        : { ...before, points: [...before.points], state: before.state.copy() }; // continued: append to a copy
      this._addPoints(stroke, s.blob, s.count);
      stroke.ended = s.ended;
      page.set(key, stroke);
      if (s.layer) layers.set(key, s.layer);
    }
    for (const s of snap.strokes) this._sawStroke(s.pid, s.stroke);
    if (!snap.last) {
      this._partial = { page: snap.page, part: snap.part + 1, seq: snap.seq, strokes: page, layers };
      return;
    }
    this._partial = null;
    while (this.pages.length <= snap.page) this.pages.push(new Map());
    const kept = Array.from({ length: Math.max(0, ...layers.values()) }, () => new Map());
    for (const [key, layer] of layers) {
      kept[layer - 1].set(key, page.get(key));
      page.delete(key);
    }
    this.pages[snap.page] = page;
    this.cleared.set(snap.page, kept.filter((layer) => layer.size > 0));
    this.awaitingPages.delete(snap.page);
    if (this.awaitingPages.size === 0) this.lastSeq = snap.seq; // whole: live events continue after it
  }

  /**
   * Our own op became event `seq` (from an Ack). Acks are cumulative and may be coalesced: the
   * server queues every other participant's event for us before it acks a later op of ours, so
   * every seq up to `seq` not seen as an Event was one of our own ops.
   */
  own(seq) {
    if (seq > this.lastSeq) this.lastSeq = seq;
  }

  /**
   * Apply `ev`; null if seen already, else the change. `appliedCseq` is the highest cseq of our
   * own ops applied locally, so their replayed events are not applied twice. A gap in seq throws
   * ProtocolError; an event that cannot be applied throws and is not consumed (lastSeq stays).
   */
  event(ev, appliedCseq = 0) {
    if (ev.seq <= this.lastSeq) return null;
    if (ev.seq !== this.lastSeq + 1) {
      throw new ProtocolError(ErrorCode.BAD_FRAME, `event ${ev.seq} after ${this.lastSeq}: a gap`);
    }
    let change;
    if (CLASS_OPS.has(ev.body.type)) { // never applied locally: the room decides them
      change = this._classOp(ev.pid, ev.sessionMs, ev.body);
    } else if (ev.pid === this.pid && ev.cseq > 0 && ev.cseq <= appliedCseq) {
      change = { page: null, kind: 'own', pid: ev.pid, stroke: null }; // applied locally already
    } else if (ev.body.type === 'Presence') {
      const { userId, online, role } = ev.body;
      const left = Boolean(ev.body.left);
      const known = this.participants.get(ev.pid);
      if (known === undefined) {
        this.participants.set(ev.pid, { userId, role, online, muted: false, currentPage: 0, handMs: 0, stage: 0,
          granted: 0, left });
      }
      else Object.assign(known, { userId, role, online, left });
      change = { page: null, kind: 'presence', pid: ev.pid, stroke: null };
    } else if (ev.body.type === 'Roster') { // a class's viewers, coalesced
      for (const c of ev.body.changes) {
        const known = this.participants.get(c.pid);
        if (known === undefined) {
          this.participants.set(c.pid, { userId: c.userId, role: c.role, online: c.online, muted: false, currentPage: 0,
            handMs: 0, stage: 0, granted: 0, left: false });
        } else {
          Object.assign(known, { userId: c.userId, role: c.role, online: c.online });
        }
      }
      change = { page: null, kind: 'roster', pid: ev.pid, stroke: null };
    } else {
      change = this.applyLocal(ev.pid, ev.body);
    }
    this.lastSeq = ev.seq;
    return change;
  }

  /**
   * Hands, questions, the stage and moderation (wire/replica.py `_class_op`): the room decided
   * them, so our own are applied from their events too. The change's kind is 'class'.
   */
  _classOp(pid, sessionMs, op) {
    const change = { page: null, kind: 'class', pid, stroke: null, op };
    this._participant(pid).online = true; // its sender was there (a class's Roster may say so a moment later)
    if (op.type === 'Hand') {
      this._participant(pid).handMs = op.raised ? Math.max(1, sessionMs) : 0;
    } else if (op.type === 'Question') {
      this.questions.push({ pid, text: op.text });
    } else if (op.type === 'Stage') {
      const target = this._participant(op.pid);
      target.stage = [1, 2, 0][op.action];
      if (target.stage === 2) target.handMs = 0;
    } else if (op.action === ModAction.LOWER_ALL_HANDS) {
      for (const p of this.participants.values()) p.handMs = 0;
    } else if (op.action === ModAction.MUTE || op.action === ModAction.UNMUTE) {
      this._participant(op.pid).muted = op.action === ModAction.MUTE;
    } else if (op.action === ModAction.LOWER_HAND) {
      this._participant(op.pid).handMs = 0;
    } else { // REMOVE
      Object.assign(this._participant(op.pid), { online: false, handMs: 0, stage: 0 });
    }
    return change;
  }

  /** Apply an op of `pid`; returns the change `{page, kind, pid, stroke, removed?, previous?, added?}`. */
  applyLocal(pid, op) {
    switch (op.type) {
      case 'StrokeBegin': {
        const page = this._page(op.page);
        const stroke = this._newStroke(pid, op.stroke, op.page, op.tool, op.color, op.width, op.flags, op.deviceT0);
        this._sawStroke(pid, op.stroke);
        page.set(strokeKey(pid, op.stroke), stroke);
        return { page: op.page, kind: 'begin', pid, stroke: op.stroke };
      }
      case 'StrokePoints': {
        const stroke = this._find(pid, op.stroke);
        const before = stroke.points.length;
        const state = stroke.state.copy();
        this._addPoints(stroke, op.blob, op.count);
        return { page: stroke.page, kind: 'points', pid, stroke: op.stroke, before, state };
      }
      case 'StrokeEnd': {
        const stroke = this._find(pid, op.stroke);
        stroke.ended = true;
        return { page: stroke.page, kind: 'end', pid, stroke: op.stroke };
      }
      case 'Undo': { // of `author`'s stroke (0: the sender's own)
        const author = op.author || pid;
        const stroke = this._find(author, op.stroke);
        const key = strokeKey(author, op.stroke);
        const index = [...this.pages[stroke.page].keys()].indexOf(key);
        this.pages[stroke.page].delete(key);
        return { page: stroke.page, kind: 'undo', pid, stroke: op.stroke, removed: stroke, index };
      }
      case 'PageAdd': {
        const added = Math.max(0, op.page + 1 - this.pages.length);
        while (this.pages.length <= op.page) this.pages.push(new Map());
        return { page: op.page, kind: 'page-add', pid, stroke: null, added };
      }
      case 'PageSwitch': {
        this._page(op.page);
        const p = this._participant(pid);
        const previous = p.currentPage;
        p.currentPage = op.page;
        return { page: op.page, kind: 'page-switch', pid, stroke: null, previous };
      }
      case 'Mute': {
        const p = this._participant(pid);
        const previous = p.muted;
        p.muted = op.muted;
        return { page: null, kind: 'mute', pid, stroke: null, previous };
      }
      case 'Clear': { // the page's strokes become its newest cleared layer (none for an empty page)
        const page = this._page(op.page);
        const removed = [...page.values()];
        const open = removed.filter((s) => !s.ended); // ended by the Clear
        let dropped = null;
        let layer = null;
        if (page.size > 0) {
          for (const s of removed) s.ended = true;
          const layers = this._layers(op.page);
          layers.push(layer = new Map(page));
          if (layers.length > CLEAR_LAYERS_KEPT) dropped = layers.shift();
          page.clear();
        }
        return { page: op.page, kind: 'clear', pid, stroke: null, removed, dropped, layer, open };
      }
      case 'Restore': { // the newest cleared layer back beneath the page's strokes
        const page = this._page(op.page);
        const layers = this._layers(op.page);
        if (layers.length === 0) {
          throw new ProtocolError(ErrorCode.NOTHING_TO_RESTORE, `replica has no cleared layer on page ${op.page}`);
        }
        const layer = layers.pop();
        const since = [...page];
        page.clear();
        for (const [key, s] of layer) page.set(key, s);
        for (const [key, s] of since) page.set(key, s);
        return { page: op.page, kind: 'restore', pid, stroke: null, restored: [...layer.values()], layer };
      }
      case 'Grant': {
        const target = this._participant(op.pid);
        const previous = target.granted ?? 0;
        target.granted = op.rights;
        return { page: null, kind: 'grant', pid, stroke: null, target: op.pid, previous };
      }
      default:
        throw new ProtocolError(ErrorCode.UNKNOWN_TYPE, `${op.type} is not an op`);
    }
  }

  /**
   * Undo what `applyLocal(pid, op)` did (`change` is what it returned), for an op the server
   * refused; returns the page that changed, or null.
   */
  rollback(pid, op, change) {
    switch (op.type) {
      case 'StrokeBegin': {
        const s = this.find(pid, op.stroke);
        if (s) this.pages[s.page].delete(strokeKey(pid, op.stroke));
        return op.page;
      }
      case 'StrokePoints': { // the stroke holds the `start` points the server has (on a page or cleared)
        const s = this.findAnywhere(pid, op.stroke);
        if (s && s.points.length > op.start) s.points.length = op.start;
        if (s && change?.state && s.points.length === change.before) s.state = change.state.copy();
        return s ? s.page : null;
      }
      case 'StrokeEnd': {
        const s = this.findAnywhere(pid, op.stroke);
        if (s && change) s.ended = false;
        return s ? s.page : null;
      }
      case 'Undo': {
        const author = op.author || pid;
        if (change?.removed && !this.findAnywhere(author, op.stroke) && this.pages[change.removed.page]) {
          this._insert(this.pages[change.removed.page], strokeKey(author, op.stroke), change.removed, change.index);
          return change.removed.page;
        }
        return null;
      }
      case 'Clear': { // the layer it pushed comes off again, beneath what arrived since
        const page = this.pages[op.page];
        if (!change?.removed || !page) return null;
        const layers = this._layers(op.page);
        const at = change.layer ? layers.indexOf(change.layer) : -1;
        if (change.layer && at < 0) return null; // a later Restore brought it back, or it was dropped
        const back = change.layer ? [...change.layer] : [];
        if (at >= 0) layers.splice(at, 1);
        if (change.dropped) layers.unshift(change.dropped);
        for (const s of change.open ?? []) s.ended = false;
        const since = [...page];
        page.clear();
        for (const [key, s] of back) page.set(key, s);
        for (const [key, s] of since) page.set(key, s);
        return op.page;
      }
      case 'Restore': { // the restored strokes go back into their layer
        const page = this.pages[op.page];
        if (!change?.layer || !page) return null;
        for (const key of change.layer.keys()) page.delete(key);
        this._layers(op.page).push(change.layer);
        return op.page;
      }
      case 'Grant': {
        const target = this.participants.get(op.pid);
        if (change && target) target.granted = change.previous;
        return null;
      }
      case 'PageSwitch': {
        const me = this.participants.get(pid);
        if (change && me && me.currentPage === op.page) me.currentPage = change.previous;
        return null;
      }
      case 'PageAdd':
        for (let i = 0; i < (change?.added ?? 0); i++) {
          if (this.pages.length > 1 && this.pages[this.pages.length - 1].size === 0) this.pages.pop();
        }
        return null;
      case 'Mute': {
        const me = this.participants.get(pid);
        if (change && me) me.muted = change.previous;
        return null;
      }
      default:
        return null;
    }
  }

  /**
   * Apply `apply()` (another's event) beneath `pendingOf()`, our ops not yet acknowledged, in cseq
   * order as outbox entries `{op, change, local}` (`local`: applied to this replica when made;
   * `pendingOf` is called only for a page op).
   * Each is tried again on top, one that did not apply included (its change is null), as the
   * server will apply it after the event: a Restore that found nothing finds the layer of a Clear
   * that came since. Returns what `apply` returns.
   */
  rebase(pendingOf, op, apply) {
    const moved = PAGE_OPS.has(op.type) ? pendingOf().filter((e) => e.local && REBASED_OPS.has(e.op.type)) : [];
    // (another's StrokeBegin goes beneath our unacknowledged strokes: the room drew it first)
    const needed = moved.length > 0 && (ORDERED_OPS.has(op.type) || op.type === 'StrokeBegin'
      || moved.some((e) => ORDERED_OPS.has(e.op.type)));
    if (!needed) return apply();
    this.rebases += 1;
    return this._beneath(moved, apply);
  }

  /**
   * Our op of outbox entry `refused` was refused: roll it back for good, beneath `later` (our
   * entries after it, in cseq order), which are taken off and put back around it; the page that changed.
   */
  refuse(later, refused) {
    const moved = later.filter((e) => e.local && REBASED_OPS.has(e.op.type));
    return this._beneath(moved, () => this.rollback(this.pid, refused.op, refused.change));
  }

  /** `apply()` with the entries `moved` (in cseq order) taken off, newest first, and put back after it. */
  _beneath(moved, apply) {
    for (let i = moved.length - 1; i >= 0; i--) this._takeOff(moved[i]);
    try {
      return apply();
    } finally {
      for (const e of moved) e.change = this._putBack(e);
    }
  }

  _takeOff(entry) {
    const { op, change } = entry;
    if (!change) return; // not applied now
    if (op.type === 'StrokeBegin') { // the stroke object (with its points) waits to go back on top
      const page = this.pages[op.page];
      const key = strokeKey(this.pid, op.stroke);
      entry.lifted = page?.get(key) ?? null;
      if (entry.lifted) page.delete(key);
    } else {
      this.rollback(this.pid, op, change);
    }
    entry.change = null;
  }

  _putBack(entry) {
    const op = entry.op;
    if (op.type === 'StrokeBegin') { // the same stroke object, with its points
      const stroke = entry.lifted;
      entry.lifted = null;
      if (!stroke || !this.pages[op.page]) return null;
      this.pages[op.page].set(strokeKey(this.pid, op.stroke), stroke);
      return { page: op.page, kind: 'begin', pid: this.pid, stroke: op.stroke };
    }
    try {
      return this.applyLocal(this.pid, op);
    } catch (exc) {
      if (!(exc instanceof ProtocolError)) throw exc;
      return null; // e.g. an Undo of a stroke the event cleared: the server refuses it too
    }
  }

  /** Put `stroke` back into `page` at its place `index` in the drawing order. */
  _insert(page, key, stroke, index) {
    if (!(index >= 0 && index < page.size)) {
      page.set(key, stroke);
      return;
    }
    const all = [...page];
    all.splice(index, 0, [key, stroke]);
    page.clear();
    for (const [k, s] of all) page.set(k, s);
  }

  _participant(pid) {
    let p = this.participants.get(pid);
    if (p === undefined) { // an op of someone whose presence we never saw (a partial stream)
      p = { userId: '', role: Role.VIEWER, online: false, muted: false, currentPage: 0, handMs: 0, stage: 0, granted: 0,
        left: false };
      this.participants.set(pid, p);
    }
    return p;
  }

  _layers(page) {
    let layers = this.cleared.get(page);
    if (layers === undefined) this.cleared.set(page, layers = []);
    return layers;
  }

  _sawStroke(pid, id) {
    if (id > (this.maxStrokeId.get(pid) ?? 0)) this.maxStrokeId.set(pid, id);
  }

  _newStroke(pid, id, page, tool, color, width, flags, deviceT0) {
    return { pid, stroke: id, page, tool, color, width, flags, deviceT0, points: [], state: new PointState(), ended: false };
  }

  _addPoints(stroke, blob, count) {
    const points = decodePoints(blob, count, stroke.flags, stroke.state);
    for (const p of points) stroke.points.push(p);
  }

  _page(page) {
    if (!(page >= 0 && page < this.pages.length)) {
      throw new ProtocolError(ErrorCode.UNKNOWN_PAGE, `replica has no page ${page} (it has ${this.pages.length})`);
    }
    return this.pages[page];
  }

  _find(pid, id) {
    const stroke = this.find(pid, id);
    if (stroke === undefined) {
      throw new ProtocolError(ErrorCode.UNKNOWN_STROKE, `replica has no stroke ${id} of participant ${pid}`);
    }
    return stroke;
  }
}
