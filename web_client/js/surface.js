// The ink surface: draws a session's current page on a <canvas> and turns pointer input into ops.
//
// Input: Pointer Events for pen, touch and mouse, every sample through getCoalescedEvents() (a
// 240 Hz pen gives 240 points a second, not one a frame), pressure 0..1 mapped to 0..4095 (a mouse,
// and touch without pressure, get a constant), tilt for pens. Points are batched and handed to the
// connection once per animation frame (<= 16 ms); getPredictedEvents() extends the stroke being
// drawn as a preview that is never sent or stored.
//
// Page space: integers, 0..PAGE_WIDTH x 0..PAGE_HEIGHT (A4 portrait). The canvas fills its
// container (the stage); the page sits in it under a view transform (zoom and pan), drawn at the
// device's pixel ratio. Every change of view re-renders the strokes from their outlines (vector,
// not a scaled bitmap), so ink stays sharp at every zoom. Strokes are filled outlines from
// perfect-freehand (pressure-sensitive width).
//
// Zoom and pan: two fingers pinch and pan (a stroke the first finger began is taken back); the
// mouse wheel zooms at the pointer, shift + wheel or a horizontal wheel pans, the middle or right
// button drags the page; fitPage() shows the whole page again (the default, kept on resize).
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
const MAX_ZOOM = 8; // times the fitted page
const MIN_ZOOM = 0.5;
const FIT_MARGIN_PX = 6;
const GESTURE_TAKEBACK_MS = 400; // a stroke a pinch interrupts this soon after it began is undone
const STAGE_COLOUR = '#e9ecf0';

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
 * 'erase-refused' (the eraser touched another participant's stroke, which our rights do not let
 * us remove: that takes UNDO_OTHERS, which the tutor has), 'stroke' (detail {id} when an own stroke ends). Without the INK right nothing
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
    this.view = { z: 1, ox: 0, oy: 0, fit: true }; // CSS px per page unit; the page's origin in CSS px
    this.cssW = 1;
    this.cssH = 1;
    this.pixelRatio = 1; // canvas pixels per CSS px
    this.touches = new Map(); // pointerId -> {x, y} of the fingers down
    this.gesture = null; // a pinch / pan under way
    this.dragPan = null; // a middle- or right-button drag
    this.touchLock = false; // after a pinch, until every finger is up: no stroke
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
      wheel: (e) => this._wheel(e),
    };
    for (const [type, fn] of Object.entries(this._handlers)) {
      canvas.addEventListener(type, fn, type === 'wheel' ? { passive: false } : undefined);
    }
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

  /** Fill the container with the canvas, in device pixels; the page stays fitted unless zoomed. */
  resize() {
    const box = (this.canvas.parentElement ?? this.canvas).getBoundingClientRect();
    const cssW = Math.max(1, Math.floor(box.width));
    const cssH = Math.max(1, Math.floor(box.height || (cssW * PAGE_HEIGHT) / PAGE_WIDTH));
    const dpr = window.devicePixelRatio || 1;
    const ratio = Math.min(dpr, MAX_CANVAS_PX / cssW, MAX_CANVAS_PX / cssH);
    const pxW = Math.max(1, Math.round(cssW * ratio));
    const pxH = Math.max(1, Math.round(cssH * ratio));
    this.canvas.style.width = `${cssW}px`;
    this.canvas.style.height = `${cssH}px`;
    const changed = this.canvas.width !== pxW || this.canvas.height !== pxH;
    if (changed) {
      this.canvas.width = pxW;
      this.canvas.height = pxH;
      this.cache.width = pxW;
      this.cache.height = pxH;
    }
    const old = { w: this.cssW, h: this.cssH };
    this.cssW = cssW;
    this.cssH = cssH;
    this.pixelRatio = pxW / cssW;
    if (this.view.fit) this.fitPage(false);
    else this._setView(this.view.z, this.view.ox + (cssW - old.w) / 2, this.view.oy, false);
    this._viewChanged();
  }

  /** The zoom that shows the whole page in the stage (CSS px per page unit). */
  get fitZoom() {
    return Math.max(1e-4, Math.min((this.cssW - 2 * FIT_MARGIN_PX) / PAGE_WIDTH,
      (this.cssH - 2 * FIT_MARGIN_PX) / PAGE_HEIGHT));
  }

  /** How far in we are, relative to the fitted page (1 = fitted). */
  get zoom() { return this.view.z / this.fitZoom; }

  /** Show the whole page, centred. */
  fitPage(announce = true) {
    const z = this.fitZoom;
    this.view = { z, ox: (this.cssW - PAGE_WIDTH * z) / 2, oy: Math.max(FIT_MARGIN_PX, (this.cssH - PAGE_HEIGHT * z) / 2),
      fit: true };
    if (announce) this._viewChanged();
  }

  /** Zoom by `factor` about the point (cx, cy) in CSS px of the canvas (default: its centre). */
  zoomBy(factor, cx = this.cssW / 2, cy = this.cssH / 2) {
    const v = this.view;
    const fit = this.fitZoom;
    const z = Math.min(fit * MAX_ZOOM, Math.max(fit * MIN_ZOOM, v.z * factor));
    const k = z / v.z;
    this._setView(z, cx - (cx - v.ox) * k, cy - (cy - v.oy) * k);
  }

  /** Move the page by (dx, dy) CSS px. */
  panBy(dx, dy) {
    this._setView(this.view.z, this.view.ox + dx, this.view.oy + dy);
  }

  _setView(z, ox, oy, announce = true) {
    // keep at least a quarter of the stage (or of the page, if smaller) showing page
    const pw = PAGE_WIDTH * z;
    const ph = PAGE_HEIGHT * z;
    const keepX = Math.min(pw, this.cssW) / 4;
    const keepY = Math.min(ph, this.cssH) / 4;
    ox = Math.min(this.cssW - keepX, Math.max(keepX - pw, ox));
    oy = Math.min(this.cssH - keepY, Math.max(keepY - ph, oy));
    this.view = { z, ox, oy, fit: Math.abs(z - this.fitZoom) < 1e-9 && this.view.fit };
    if (announce) this._viewChanged();
  }

  _viewChanged() {
    this.scale = this.view.z * this.pixelRatio;
    this.cacheValid = false;
    this.requestFrame();
    this.dispatchEvent(new CustomEvent('view', { detail: { zoom: this.zoom, fit: this.view.fit } }));
  }

  /** Where the page is on screen (client coordinates), clipped to the canvas. */
  pageRect() {
    const r = this.canvas.getBoundingClientRect();
    const v = this.view;
    const left = Math.max(r.left, r.left + v.ox);
    const top = Math.max(r.top, r.top + v.oy);
    const right = Math.min(r.right, r.left + v.ox + PAGE_WIDTH * v.z);
    const bottom = Math.min(r.bottom, r.top + v.oy + PAGE_HEIGHT * v.z);
    return { x: left, y: top, width: Math.max(0, right - left), height: Math.max(0, bottom - top) };
  }

  /** Page units to canvas pixels: [x, y] of a page point. */
  toCanvas(x, y) {
    const k = this.pixelRatio;
    return [(this.view.ox + x * this.view.z) * k, (this.view.oy + y * this.view.z) * k];
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
    const r = this.rect ?? this.canvas.getBoundingClientRect();
    const v = this.view;
    const x = Math.round((e.clientX - r.left - v.ox) / v.z);
    const y = Math.round((e.clientY - r.top - v.oy) / v.z);
    return [Math.min(PAGE_WIDTH, Math.max(0, x)), Math.min(PAGE_HEIGHT, Math.max(0, y))];
  }

  // --- zoom and pan input ----------------------------------------------------------------------

  _local(e) {
    const r = this.canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  _wheel(e) {
    e.preventDefault();
    const [cx, cy] = this._local(e);
    const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? this.cssH : 1;
    if (e.shiftKey || (Math.abs(e.deltaX) > Math.abs(e.deltaY) && !e.ctrlKey)) {
      this.panBy(-(e.shiftKey ? e.deltaY || e.deltaX : e.deltaX) * unit, e.shiftKey ? 0 : -e.deltaY * unit);
      return;
    }
    const speed = e.ctrlKey ? 0.01 : 0.0015; // a trackpad pinch comes as ctrl + small deltas
    this.zoomBy(Math.exp(-e.deltaY * unit * speed), cx, cy);
  }

  _gestureState() {
    const [a, b] = [...this.touches.values()];
    return { mid: [(a.x + b.x) / 2, (a.y + b.y) / 2], d: Math.max(1, Math.hypot(a.x - b.x, a.y - b.y)) };
  }

  /** A second finger came down: take back the first finger's young stroke, and pinch instead. */
  _startGesture() {
    const a = this.active;
    if (a !== null && a.touch) {
      this.active = null;
      if (!a.eraser) {
        a.preview = [];
        this._flush(a);
        this.session.endStroke(a.id);
        if (a.startedAt !== undefined && performance.now() - a.startedAt < GESTURE_TAKEBACK_MS) this.session.undo(a.id);
      }
    }
    const g = this._gestureState();
    this.gesture = { ...g, z: this.view.z, ox: this.view.ox, oy: this.view.oy };
    this.touchLock = true;
  }

  _moveGesture() {
    const g0 = this.gesture;
    const g = this._gestureState();
    const r = this.canvas.getBoundingClientRect();
    const fit = this.fitZoom;
    const z = Math.min(fit * MAX_ZOOM, Math.max(fit * MIN_ZOOM, g0.z * (g.d / g0.d)));
    const k = z / g0.z;
    const [mx0, my0] = [g0.mid[0] - r.left, g0.mid[1] - r.top];
    const [mx, my] = [g.mid[0] - r.left, g.mid[1] - r.top];
    this._setView(z, mx - (mx0 - g0.ox) * k, my - (my0 - g0.oy) * k);
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
    if (e.pointerType === 'touch') {
      this.touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
      try { this.canvas.setPointerCapture(e.pointerId); } catch { /* synthetic events */ }
      if (this.touches.size === 2) {
        e.preventDefault();
        this._startGesture();
        return;
      }
      if (this.touches.size > 2 || this.touchLock) return;
    }
    if (e.pointerType !== 'touch' && (e.button === 1 || e.button === 2) && this.active === null) {
      e.preventDefault();
      this.dragPan = { pointerId: e.pointerId, x: e.clientX, y: e.clientY };
      try { this.canvas.setPointerCapture(e.pointerId); } catch { /* synthetic events */ }
      return;
    }
    if (this.active !== null) return; // one stroke at a time
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
      deviceT0: Math.round(performance.timeOrigin + e.timeStamp), touch: e.pointerType === 'touch',
      startedAt: performance.now() };
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
    if (e.pointerType === 'touch' && this.touches.has(e.pointerId)) {
      this.touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (this.gesture !== null && this.touches.size >= 2) {
        e.preventDefault();
        this._moveGesture();
        return;
      }
    }
    if (this.dragPan !== null && e.pointerId === this.dragPan.pointerId) {
      this.panBy(e.clientX - this.dragPan.x, e.clientY - this.dragPan.y);
      this.dragPan.x = e.clientX;
      this.dragPan.y = e.clientY;
      return;
    }
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
    if (e.pointerType === 'touch' && this.touches.delete(e.pointerId)) {
      if (this.touches.size < 2) this.gesture = null;
      if (this.touches.size === 0) this.touchLock = false;
    }
    if (this.dragPan !== null && e.pointerId === this.dragPan.pointerId) {
      this.dragPan = null;
      return;
    }
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

  /**
   * Undo every own stroke under the eraser, and with UNDO_OTHERS (the tutor's) every other
   * participant's finished stroke too (an `Undo` naming its author); else those are refused.
   */
  _erase(e) {
    const [x, y] = this._toPage(e);
    this.eraserAt = [x, y];
    const page = this.session.replica.pages[this.page];
    if (!page) return;
    let refused = false;
    for (const s of [...page.values()]) {
      if (!this._hits(s, x, y)) continue;
      if (s.pid === this.session.pid) this.session.undo(s.stroke);
      else if (!this.session.may(Rights.UNDO_OTHERS)) refused = true;
      else if (s.ended) this.session.undo(s.stroke, s.pid); // one still being written is left to its author
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
    const k = this.pixelRatio;
    ctx.setTransform(this.scale, 0, 0, this.scale, this.view.ox * k, this.view.oy * k);
  }

  _rebuildCache(page) {
    const ctx = this.cacheCtx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = STAGE_COLOUR;
    ctx.fillRect(0, 0, this.cache.width, this.cache.height);
    this._setTransform(ctx);
    ctx.shadowColor = 'rgba(0, 0, 0, 0.25)';
    ctx.shadowBlur = 4 * this.pixelRatio;
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, PAGE_WIDTH, PAGE_HEIGHT);
    ctx.shadowColor = 'transparent';
    ctx.shadowBlur = 0;
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
