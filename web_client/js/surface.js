// The ink surface: draws a session's current page on a <canvas> and turns pointer input into ops.
//
// Input: Pointer Events for pen, touch and mouse, every sample through getCoalescedEvents() (a
// 240 Hz pen gives 240 points a second, not one a frame), pressure 0..1 mapped to 0..4095 (a mouse,
// and touch without pressure, get a constant), tilt for pens. Points are batched and handed to the
// connection once per animation frame (<= 16 ms); getPredictedEvents() extends the stroke being
// drawn as a preview that is never sent or stored.
//
// Page space: integers, 0..PAGE_WIDTH x 0..PAGE_HEIGHT (A4 portrait), scaled to the canvas with
// devicePixelRatio. Strokes are filled outlines from perfect-freehand (pressure-sensitive width).
//
// Rendering is incremental: ended strokes are baked into a cached layer once; each frame draws
// the cache and then only the open strokes (own and remote, as they stream). An open stroke's
// outline is cut into frozen chunks that are outlined once, so a frame outlines only the last
// few hundred points however long the stroke grows.

import { getStroke } from '../vendor/perfect-freehand/index.mjs';
import { HAS_PRESSURE, HAS_TILT } from './wire/ink.js';
import { Tool } from './wire/messages.js';
import { Rights } from './wire/roles.js';

export const PAGE_WIDTH = 10_000;
export const PAGE_HEIGHT = 14_142;
export const WIDTHS = [28, 56, 112]; // page units: fine, medium, bold
const MOUSE_PRESSURE = 2048;
const MAX_POINTS_PER_STROKE = 10_000; // a longer stroke continues as a new one (the server caps strokes)
const ERASER_RADIUS = 120; // page units
const PALM_REJECT_MS = 1500; // touches this soon after pen input are palms
const CHUNK = 128; // points outlined together once frozen
const TAIL = 48; // points kept live at the tip (the smoothing there still changes)
const OVERLAP = 4; // points a chunk repeats from the one before, so the joins do not show
const MAX_CANVAS_PX = 4096;

function outlinePath(outline) {
  const path = new Path2D();
  if (outline.length === 0) return path;
  path.moveTo(outline[0][0], outline[0][1]);
  for (let i = 0; i < outline.length; i++) {
    const [x0, y0] = outline[i];
    const [x1, y1] = outline[(i + 1) % outline.length];
    path.quadraticCurveTo(x0, y0, (x0 + x1) / 2, (y0 + y1) / 2);
  }
  path.closePath();
  return path;
}

function freehandOptions(stroke, last) {
  const pressured = (stroke.flags & HAS_PRESSURE) !== 0;
  return {
    size: stroke.width,
    thinning: pressured ? 0.6 : 0,
    smoothing: 0.5,
    streamline: 0.3,
    simulatePressure: false,
    last,
  };
}

function inputPoints(stroke, points) {
  const pressured = (stroke.flags & HAS_PRESSURE) !== 0;
  return points.map((p) => [p.x, p.y, pressured ? Math.max(0.05, p.pressure / 4095) : 0.5]);
}

function outline(stroke, points, last) {
  return outlinePath(getStroke(inputPoints(stroke, points), freehandOptions(stroke, last)));
}

/** The wire's 0xRRGGBBAA as a CSS colour. */
export function wireToCss(color) {
  const r = Math.floor(color / 2 ** 24) & 0xff;
  const g = (color >>> 16) & 0xff;
  const b = (color >>> 8) & 0xff;
  const a = color & 0xff;
  return `rgba(${r}, ${g}, ${b}, ${(a / 255).toFixed(3)})`;
}

function distanceToSegment(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const len = dx * dx + dy * dy;
  let t = len === 0 ? 0 : ((px - ax) * dx + (py - ay) * dy) / len;
  t = Math.max(0, Math.min(1, t));
  const cx = ax + t * dx - px;
  const cy = ay + t * dy - py;
  return Math.sqrt(cx * cx + cy * cy);
}

/**
 * Draws `session`'s current page on `canvas` and sends what is drawn on it. Options: `tool`
 * ('pen' | 'highlighter' | 'eraser'), `color` ('#RRGGBB'), `width` (page units). Events:
 * 'erase-refused' (the eraser touched another participant's stroke, which the protocol does not
 * let us remove), 'stroke' (detail {id} when an own stroke ends). Without the INK right nothing
 * is drawn (the page is shown only).
 */
export class InkSurface extends EventTarget {
  constructor(canvas, session, { tool = 'pen', color = '#1a1a1a', width = WIDTHS[1] } = {}) {
    super();
    this.canvas = canvas;
    this.session = session;
    this.tool = tool;
    this.color = color;
    this.width = width;
    this.ctx = canvas.getContext('2d');
    this.cache = document.createElement('canvas');
    this.cacheCtx = this.cache.getContext('2d');
    this.cacheValid = false;
    this.cachePage = -1;
    this.baked = new WeakSet();
    this.renders = new WeakMap(); // stroke -> {chunks: Path2D[], frozenUpTo, count, full}
    this.boxes = new WeakMap(); // stroke -> {count, minX, minY, maxX, maxY}
    this.scale = 1; // canvas pixels per page unit
    this.active = null; // {pointerId, id, pending, preview, downStamp, lastPoint, flags, count, eraser}
    this.eraserAt = null;
    this.lastPenAt = -Infinity;
    this.frame = 0;
    canvas.style.touchAction = 'none';

    this._onChange = (e) => this._changed(e.detail);
    session.addEventListener('change', this._onChange);
    this._handlers = {
      pointerdown: (e) => this._down(e),
      pointermove: (e) => this._move(e),
      pointerup: (e) => this._up(e, false),
      pointercancel: (e) => this._up(e, true),
      lostpointercapture: (e) => this._up(e, false),
      contextmenu: (e) => e.preventDefault(),
    };
    for (const [type, fn] of Object.entries(this._handlers)) canvas.addEventListener(type, fn);
    this._resizeObserver = new ResizeObserver(() => this.resize());
    this._resizeObserver.observe(canvas.parentElement ?? canvas);
    this._onDpr = () => this.resize();
    window.addEventListener('resize', this._onDpr);
    this.resize();
  }

  destroy() {
    this.session.removeEventListener('change', this._onChange);
    for (const [type, fn] of Object.entries(this._handlers)) this.canvas.removeEventListener(type, fn);
    this._resizeObserver.disconnect();
    window.removeEventListener('resize', this._onDpr);
    cancelAnimationFrame(this.frame);
  }

  setTool(tool) { this.tool = tool; }

  setColor(color) { this.color = color; }

  setWidth(width) { this.width = width; }

  /** The page shown: this participant's current page. */
  get page() { return this.session.currentPage; }

  /** Fit the canvas to its container at the page's aspect ratio, in device pixels. */
  resize() {
    const box = (this.canvas.parentElement ?? this.canvas).getBoundingClientRect();
    const availW = Math.max(1, box.width);
    const availH = Math.max(1, box.height || (availW * PAGE_HEIGHT) / PAGE_WIDTH);
    const cssW = Math.min(availW, (availH * PAGE_WIDTH) / PAGE_HEIGHT);
    const cssH = (cssW * PAGE_HEIGHT) / PAGE_WIDTH;
    const dpr = window.devicePixelRatio || 1;
    const pxH = Math.min(MAX_CANVAS_PX, Math.round(cssH * dpr));
    const pxW = Math.round((pxH * PAGE_WIDTH) / PAGE_HEIGHT);
    this.canvas.style.width = `${cssW}px`;
    this.canvas.style.height = `${cssH}px`;
    if (this.canvas.width !== pxW || this.canvas.height !== pxH) {
      this.canvas.width = pxW;
      this.canvas.height = pxH;
      this.cache.width = pxW;
      this.cache.height = pxH;
      this.cacheValid = false;
    }
    this.scale = pxW / PAGE_WIDTH;
    this.requestFrame();
  }

  requestFrame() {
    if (this.frame === 0) this.frame = requestAnimationFrame(() => this._frame());
  }

  _changed(change) {
    if (change.page !== null && change.page !== this.page && change.kind !== 'page-switch') return;
    switch (change.kind) {
      case 'begin': case 'points': case 'end': case 'page-add':
        break;
      default: // undo, clear, rollback, reset, page-switch: the cached layer is stale
        this.cacheValid = false;
    }
    this.requestFrame();
  }

  // --- input -----------------------------------------------------------------------------------

  _toPage(e) {
    const r = this.rect;
    const x = Math.round(((e.clientX - r.left) / r.width) * PAGE_WIDTH);
    const y = Math.round(((e.clientY - r.top) / r.height) * PAGE_HEIGHT);
    return [Math.min(PAGE_WIDTH, Math.max(0, x)), Math.min(PAGE_HEIGHT, Math.max(0, y))];
  }

  /** The page point of a pointer sample; null for a pen sample out of contact (pressure 0: the lift). */
  _point(e, a) {
    if (e.pointerType === 'pen' && !(e.pressure > 0)) return null;
    const [x, y] = this._toPage(e);
    let pressure = MOUSE_PRESSURE;
    if (e.pointerType !== 'mouse') { // touch without pressure reports 0: a constant, as for a mouse
      pressure = e.pressure > 0 ? Math.round(e.pressure * 4095) : MOUSE_PRESSURE;
      pressure = Math.min(4095, Math.max(1, pressure));
    }
    const t = Math.max(a.lastT, Math.round(e.timeStamp - a.downStamp));
    return { x, y, t, pressure, tiltX: Math.round(e.tiltX || 0), tiltY: Math.round(e.tiltY || 0) };
  }

  _down(e) {
    if (e.pointerType === 'pen') this.lastPenAt = e.timeStamp;
    if (this.active !== null) return; // one stroke at a time; a second finger is ignored
    if (!this.session.may(Rights.INK)) return;
    if (e.pointerType === 'touch' && e.timeStamp - this.lastPenAt < PALM_REJECT_MS) return;
    const penEraser = e.pointerType === 'pen' && (e.button === 5 || (e.buttons & 32) !== 0);
    if (e.button !== 0 && !penEraser) return;
    e.preventDefault();
    this.rect = this.canvas.getBoundingClientRect();
    try { this.canvas.setPointerCapture(e.pointerId); } catch { /* synthetic events */ }
    const eraser = penEraser || this.tool === 'eraser';
    const a = { pointerId: e.pointerId, id: null, pending: [], preview: [], downStamp: e.timeStamp, lastT: 0,
      last: null, flags: HAS_PRESSURE | (e.pointerType === 'pen' ? HAS_TILT : 0), count: 0, eraser,
      deviceT0: Math.round(performance.timeOrigin + e.timeStamp) };
    this.active = a;
    if (eraser) {
      this._erase(e);
      return;
    }
    this._begin(a);
    this._push(a, this._point(e, a));
    this.requestFrame();
  }

  _begin(a) {
    const tool = this.tool === 'highlighter' ? Tool.HIGHLIGHTER : Tool.PEN;
    const color = tool === Tool.HIGHLIGHTER ? `${this.color}66` : this.color;
    a.id = this.session.beginStroke({ page: this.page, tool, color, width: this.width, flags: a.flags,
      deviceT0: a.deviceT0 });
    a.count = 0;
  }

  _push(a, p) {
    if (p === null) return;
    const l = a.last;
    if (l && l.x === p.x && l.y === p.y && l.pressure === p.pressure && l.tiltX === p.tiltX && l.tiltY === p.tiltY) return;
    if (a.count >= MAX_POINTS_PER_STROKE) { // continue as a new stroke from the same point
      this._flush(a);
      this.session.endStroke(a.id);
      this._begin(a);
      if (l) { a.pending.push({ ...l }); a.count += 1; }
    }
    a.last = p;
    a.lastT = p.t;
    a.pending.push(p);
    a.count += 1;
  }

  _move(e) {
    if (e.pointerType === 'pen') this.lastPenAt = e.timeStamp;
    const a = this.active;
    if (a === null || e.pointerId !== a.pointerId) {
      if (this.tool === 'eraser' && e.pointerType !== 'touch') this._hover(e);
      return;
    }
    e.preventDefault();
    const samples = typeof e.getCoalescedEvents === 'function' ? e.getCoalescedEvents() : [];
    if (a.eraser) {
      for (const s of samples.length ? samples : [e]) this._erase(s);
      return;
    }
    for (const s of samples.length ? samples : [e]) this._push(a, this._point(s, a));
    const predicted = typeof e.getPredictedEvents === 'function' ? e.getPredictedEvents() : [];
    a.preview = predicted.map((s) => this._point(s, a)).filter((p) => p !== null);
    this.requestFrame();
  }

  _up(e, cancelled) {
    const a = this.active;
    if (a === null || e.pointerId !== a.pointerId) return;
    this.active = null;
    this.eraserAt = null;
    if (!a.eraser) {
      // a pen or finger lifts at pressure 0: its up event adds no point; a mouse's may have moved
      if (!cancelled && e.type === 'pointerup' && e.pointerType === 'mouse') this._push(a, this._point(e, a));
      a.preview = [];
      this._flush(a);
      this.session.endStroke(a.id);
      this.dispatchEvent(new CustomEvent('stroke', { detail: { id: a.id } }));
    }
    this.requestFrame();
  }

  /** Hand the batched points to the connection: once a frame, so at most every ~16 ms. */
  _flush(a = this.active) {
    if (a === null || a.eraser || a.pending.length === 0) return;
    this.session.addPoints(a.id, a.pending);
    a.pending = [];
  }

  _hover(e) {
    this.rect = this.canvas.getBoundingClientRect();
    const [x, y] = this._toPage(e);
    this.eraserAt = [x, y];
    this.requestFrame();
  }

  /** Undo every own stroke under the eraser; others' strokes cannot be removed (Undo is own-only). */
  _erase(e) {
    const [x, y] = this._toPage(e);
    this.eraserAt = [x, y];
    const page = this.session.replica.pages[this.page];
    if (!page) return;
    let refused = false;
    for (const s of [...page.values()]) {
      if (!this._hits(s, x, y)) continue;
      if (s.pid === this.session.pid) this.session.undo(s.stroke);
      else refused = true;
    }
    if (refused) this.dispatchEvent(new CustomEvent('erase-refused'));
    this.requestFrame();
  }

  _hits(stroke, x, y) {
    const pts = stroke.points;
    if (pts.length === 0) return false;
    let box = this.boxes.get(stroke);
    if (!box || box.count !== pts.length) {
      box = { count: pts.length, minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity };
      for (const p of pts) {
        if (p.x < box.minX) box.minX = p.x;
        if (p.x > box.maxX) box.maxX = p.x;
        if (p.y < box.minY) box.minY = p.y;
        if (p.y > box.maxY) box.maxY = p.y;
      }
      this.boxes.set(stroke, box);
    }
    const r = ERASER_RADIUS + stroke.width / 2;
    if (x < box.minX - r || x > box.maxX + r || y < box.minY - r || y > box.maxY + r) return false;
    if (pts.length === 1) return Math.hypot(pts[0].x - x, pts[0].y - y) <= r;
    for (let i = 1; i < pts.length; i++) {
      if (distanceToSegment(x, y, pts[i - 1].x, pts[i - 1].y, pts[i].x, pts[i].y) <= r) return true;
    }
    return false;
  }

  // --- drawing ---------------------------------------------------------------------------------

  _paint(ctx, stroke, paths) {
    // the colour carries its alpha (a highlighter's is translucent); an eraser stroke from another client paints the paper colour
    ctx.fillStyle = stroke.tool === Tool.ERASER ? '#ffffff' : wireToCss(stroke.color);
    for (const p of paths) ctx.fill(p);
  }

  _fullPath(stroke) {
    let r = this.renders.get(stroke);
    if (!r) {
      r = { chunks: [], frozenUpTo: 0, count: 0, full: null, fullCount: -1 };
      this.renders.set(stroke, r);
    }
    if (r.full === null || r.fullCount !== stroke.points.length) {
      r.full = outline(stroke, stroke.points, true);
      r.fullCount = stroke.points.length;
    }
    return r.full;
  }

  /** The paths of an open stroke: frozen chunks (outlined once) and the live tip (with `preview`). */
  _livePaths(stroke, preview) {
    const pts = stroke.points;
    let r = this.renders.get(stroke);
    if (!r || pts.length < r.frozenUpTo) {
      r = { chunks: [], frozenUpTo: 0, count: 0, full: null, fullCount: -1 };
      this.renders.set(stroke, r);
    }
    while (pts.length - r.frozenUpTo > CHUNK + TAIL) {
      const from = Math.max(0, r.frozenUpTo - OVERLAP);
      r.chunks.push(outline(stroke, pts.slice(from, r.frozenUpTo + CHUNK), true));
      r.frozenUpTo += CHUNK;
    }
    const tail = pts.slice(Math.max(0, r.frozenUpTo - OVERLAP));
    if (preview.length) tail.push(...preview);
    return tail.length ? [...r.chunks, outline(stroke, tail, false)] : r.chunks;
  }

  _setTransform(ctx) {
    ctx.setTransform(this.scale, 0, 0, this.scale, 0, 0);
  }

  _rebuildCache(page) {
    const ctx = this.cacheCtx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, this.cache.width, this.cache.height);
    this._setTransform(ctx);
    this.baked = new WeakSet();
    if (page) {
      for (const s of page.values()) {
        if (!s.ended) continue;
        this._paint(ctx, s, [this._fullPath(s)]);
        this.baked.add(s);
      }
    }
    this.cacheValid = true;
    this.cachePage = this.page;
  }

  _frame() {
    this.frame = 0;
    this._flush(); // the batch of this frame goes out now, and is in the replica for the echo below
    const pageIndex = this.page;
    const page = this.session.replica.pages[pageIndex];
    if (!this.cacheValid || this.cachePage !== pageIndex) this._rebuildCache(page);
    const open = [];
    if (page) {
      for (const s of page.values()) {
        if (!s.ended) open.push(s);
        else if (!this.baked.has(s)) { // ended since the last frame: bake it
          this._paint(this.cacheCtx, s, [this._fullPath(s)]);
          this.baked.add(s);
          this.renders.delete(s);
        }
      }
    }
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(this.cache, 0, 0);
    this._setTransform(ctx);
    const a = this.active;
    for (const s of open) {
      const own = a !== null && !a.eraser && s.pid === this.session.pid && s.stroke === a.id;
      this._paint(ctx, s, this._livePaths(s, own ? a.preview : []));
    }
    if (this.eraserAt !== null && this.tool === 'eraser') {
      ctx.beginPath();
      ctx.arc(this.eraserAt[0], this.eraserAt[1], ERASER_RADIUS, 0, Math.PI * 2);
      ctx.lineWidth = 12;
      ctx.strokeStyle = 'rgba(80, 80, 80, 0.6)';
      ctx.stroke();
    }
    if (this.active !== null && !this.active.eraser) this.requestFrame(); // keep flushing while drawing
  }
}
