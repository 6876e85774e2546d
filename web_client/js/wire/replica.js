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

import { ErrorCode, ProtocolError } from './errors.js';
import { PointState, decodePoints } from './ink.js';
import { CLEAR_LAYERS_KEPT } from './limits.js';
import { CatchUp, ModAction } from './messages.js';
import { Role } from './roles.js';

const CLASS_OPS = new Set(['Hand', 'Question', 'Stage', 'Moderate']);

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
    } else if (rebuild) {
      this.pages = [new Map()];
      this.cleared = new Map();
      this.awaitingPages = new Set();
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
        this._addPoints(stroke, op.blob, op.count);
        return { page: stroke.page, kind: 'points', pid, stroke: op.stroke };
      }
      case 'StrokeEnd': {
        const stroke = this._find(pid, op.stroke);
        stroke.ended = true;
        return { page: stroke.page, kind: 'end', pid, stroke: op.stroke };
      }
      case 'Undo': { // of `author`'s stroke (0: the sender's own)
        const author = op.author || pid;
        const stroke = this._find(author, op.stroke);
        this.pages[stroke.page].delete(strokeKey(author, op.stroke));
        return { page: stroke.page, kind: 'undo', pid, stroke: op.stroke, removed: stroke };
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
        let dropped = null;
        if (page.size > 0) {
          for (const s of removed) s.ended = true;
          const layers = this._layers(op.page);
          layers.push(new Map(page));
          if (layers.length > CLEAR_LAYERS_KEPT) dropped = layers.shift();
          page.clear();
        }
        return { page: op.page, kind: 'clear', pid, stroke: null, removed, dropped };
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
      case 'StrokePoints': { // the stroke holds the `start` points the server has
        const s = this.find(pid, op.stroke);
        if (s && s.points.length > op.start) s.points.length = op.start;
        return s ? s.page : null;
      }
      case 'Undo': {
        const author = op.author || pid;
        if (change?.removed && !this.find(author, op.stroke) && this.pages[change.removed.page]) {
          this.pages[change.removed.page].set(strokeKey(author, op.stroke), change.removed);
          return change.removed.page;
        }
        return null;
      }
      case 'Clear': { // the layer it pushed comes off again, beneath what arrived since
        const page = this.pages[op.page];
        if (!change?.removed || !page) return null;
        const layers = this._layers(op.page);
        if (change.removed.length > 0) layers.pop();
        if (change.dropped) layers.unshift(change.dropped);
        const since = [...page];
        page.clear();
        for (const s of change.removed) page.set(strokeKey(s.pid, s.stroke), s);
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
