// The replay's model of a recording's ink, without the page (sans-I/O: replay.js draws it): every
// stroke with each point's session time, and when it was on the page. A stroke is hidden by an
// Undo (for good) or by a Clear (until a Restore, the undo of that Clear, brings it back), so its
// `hidden` holds [from, to | null] spans on the session clock; `removedMs`/`removedBy` are its
// state at the end of the recording, as recordings/exports/strokes.py gives it.

import { CLEAR_LAYERS_KEPT } from './wire/limits.js';

const HAS_PRESSURE = 1;

// -- ink on the session clock -------------------------------------------------------------------

export class ClockMap {
  /** `offsets`: the manifest's clock_offsets, {pid: [{at_ms, offset_ms}]} (pids as decimal strings). */
  constructor(offsets = {}) {
    this.byPid = new Map();
    for (const [pid, list] of Object.entries(offsets || {})) {
      const sorted = [...list].sort((a, b) => a.at_ms - b.at_ms);
      if (sorted.length) this.byPid.set(Number(pid), [sorted.map((c) => c.at_ms), sorted.map((c) => c.offset_ms)]);
    }
  }

  knows(pid) {
    return this.byPid.has(pid);
  }

  offset(pid, ms) {
    const [times, offsets] = this.byPid.get(pid);
    let lo = 0;
    let hi = times.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (times[mid] < ms) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0) return offsets[0];
    if (lo === times.length || ms - times[lo - 1] <= times[lo] - ms) return offsets[lo - 1];
    return offsets[lo];
  }

  toSession(pid, deviceMs, nearMs) {
    const estimate = deviceMs - this.offset(pid, nearMs);
    return deviceMs - this.offset(pid, estimate);
  }
}

/**
 * Strokes (in the order they began) with every point's session time, pages, and page focus.
 * `participants`: the events response's [{pid, role, user_id, label}].
 */
export function buildStrokes(events, clockOffsets, participants = []) {
  const roles = new Map(participants.map((p) => [p.pid, p.role]));
  const order = [];
  const live = new Map();
  const focus = [];
  const pages = new Set([0]);
  const cleared = new Map(); // page -> what its Clears took, newest last (a Restore brings it back)
  for (const ev of events) {
    const key = `${ev.type === "undo" && ev.author ? ev.author : ev.pid}-${ev.stroke}`; // an Undo may name another's
    const found = live.get(key);
    switch (ev.type) {
      case "stroke_begin": {
        const s = {
          id: key, pid: ev.pid, label: ev.seat, role: roles.get(ev.pid) ?? null, stroke: ev.stroke, page: ev.page,
          tool: ev.tool, color: ev.color, width: ev.width,
          flags: ev.flags, deviceT0: ev.device_t0, beginMs: ev.session_ms, lastMs: ev.session_ms, endMs: null,
          raw: [], removedMs: null, removedBy: null, hidden: [], // hidden: [from, to | null] spans
        };
        live.set(key, s);
        order.push(s);
        pages.add(ev.page);
        focus.push([ev.session_ms, ev.page]);
        break;
      }
      case "stroke_points":
        if (!found) break;
        found.lastMs = ev.session_ms;
        if (Array.isArray(ev.points)) for (const p of ev.points) found.raw.push(p);
        break;
      case "stroke_end":
        if (found) {
          found.lastMs = ev.session_ms;
          found.endMs = ev.session_ms;
        }
        break;
      case "undo":
        if (found && found.removedMs === null) remove(found, ev.session_ms, "undo");
        break;
      case "clear": {
        const layer = order.filter((s) => s.page === ev.page && s.removedMs === null);
        for (const s of layer) remove(s, ev.session_ms, "clear");
        if (layer.length === 0) break; // an empty page's Clear keeps no layer, as in the room
        const layers = cleared.get(ev.page) ?? [];
        layers.push(layer);
        if (layers.length > CLEAR_LAYERS_KEPT) layers.shift();
        cleared.set(ev.page, layers);
        break;
      }
      case "restore": { // the undo of the page's latest Clear: its strokes are shown again from here
        const layer = cleared.get(ev.page)?.pop() ?? [];
        for (const s of layer) {
          s.hidden[s.hidden.length - 1][1] = ev.session_ms;
          s.removedMs = null;
          s.removedBy = null;
        }
        break;
      }
      case "page_add":
        pages.add(ev.page);
        break;
      case "page_switch":
        pages.add(ev.page);
        focus.push([ev.session_ms, ev.page]);
        break;
      default:
        break;
    }
  }
  const clocks = new ClockMap(clockOffsets);
  for (const s of order) timePoints(s, clocks);
  focus.sort((a, b) => a[0] - b[0]);
  return { strokes: order, pages: [...pages].sort((a, b) => a - b), focus };
}

function remove(s, ms, by) {
  s.removedMs = ms;
  s.removedBy = by;
  s.hidden.push([ms, null]);
}

function timePoints(s, clocks) {
  const pts = s.raw;
  const n = pts.length;
  const ms = new Float64Array(n);
  if (clocks.knows(s.pid)) {
    for (let i = 0; i < n; i++) ms[i] = clocks.toSession(s.pid, s.deviceT0 + pts[i][2], s.beginMs);
  } else {
    const start = s.beginMs;
    const stop = s.endMs ?? s.lastMs;
    const span = n ? pts[n - 1][2] - pts[0][2] : 0;
    for (let i = 0; i < n; i++) {
      if (span > 0) ms[i] = start + ((pts[i][2] - pts[0][2]) / span) * (stop - start);
      else ms[i] = n > 1 ? start + (i / (n - 1)) * (stop - start) : start;
    }
  }
  for (let i = 1; i < n; i++) if (ms[i] < ms[i - 1]) ms[i] = ms[i - 1]; // binary search needs order
  s.ms = ms;
  s.startMs = n ? ms[0] : s.beginMs; // when it was written: its first point
  s.doneMs = n ? ms[n - 1] : s.beginMs;
  s.pressured = (s.flags & HAS_PRESSURE) !== 0;
  s.whole = null; // Path2D of the whole stroke, made when first needed
  s.partial = null; // [count, Path2D] of the last prefix drawn
}

function countUpTo(ms, now) {
  let lo = 0;
  let hi = ms.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ms[mid] <= now) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}


/** How many of the stroke's points are written at `now` (0: not yet, or removed by then). */
export function visibleCount(s, now) {
  if (s.hidden.some(([from, to]) => from <= now && (to === null || now < to))) return 0;
  if (s.startMs > now) return 0;
  return Math.max(1, countUpTo(s.ms, now));
}
