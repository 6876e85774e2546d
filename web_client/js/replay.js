// Replay (replay.html): without ?id=, the recordings the user may see (GET /api/recordings);
// with ?id=, one recording's ink and voices together, over the replay API.
//
// Ink: GET /api/recordings/{id}/events (points decoded, each event with its participant's pid and
// export label, and the recording's participants) and the manifest's clock offsets (by pid)
// place every point on the session clock as the exports do (recordings/exports/strokes.py): a
// point's device time (device_t0 + t) minus its participant's clock offset measured nearest in
// time; without offsets, a stroke's points are spread between its begin and end. Strokes are drawn on the live
// view's A4 page (surface.js: 10000 x 14142 units, perfect-freehand outlines), up to the time.
//
// Audio (the choice): each participant's own Ogg Opus file (/audio/{label}.opus: "tutor",
// "student" in a one-on-one session; fetched with the bearer token into a Blob URL) rather than the mixed WAV export: Opus is ~20x smaller, which
// matters on a rural phone line, and never decoded on the server. The Ogg granule positions put
// sample 0 at session clock 0, so file time is session time. The timeline is one clock element,
// `audio`: a silent WAV as long as the session, made in the browser (so the ink plays on after a
// voice ends, and with no voice at all). Both voices follow it: play, pause, rate, and a
// correction whenever one drifts more than 120 ms. `window.tw.replay` exposes {audio, seekMs,
// currentMs, strokeAt} for tests and the console.

import { ApiError, apiBlob, apiGet, initChrome, requireAuth } from "./api.js";
import { errorText, formatDateTime, formatDuration, t } from "./i18n.js";
import { getStroke } from "../vendor/perfect-freehand/index.mjs";
import { buildStrokes, visibleCount } from "./replaymodel.js";

const PAGE_WIDTH = 10_000; // the live view's page (surface.js)
const PAGE_HEIGHT = 14_142;
const DRIFT_S = 0.12;
const SILENT_RATE = 4000; // Hz, 8-bit: 4 kB a second for the clock track (Chromium's floor is 3000)
const TAP_SLOP_PX = 10;

const auth = requireAuth("student", "tutor", "researcher", "admin");
const $ = (id) => document.getElementById(id);
const statusLine = $("replay-status");

function say(text) {
  statusLine.textContent = text;
}

// -- the list -------------------------------------------------------------------------------------

const PEOPLE_SHOWN = 4; // a class has hundreds: the first few, then how many more

function people(names) {
  if (!names.length) return t("none");
  if (names.length <= PEOPLE_SHOWN) return names.join(", ");
  return t("replay.list.more", { names: names.slice(0, PEOPLE_SHOWN - 1).join(", "), n: names.length - PEOPLE_SHOWN + 1 });
}

async function showList() {
  const section = $("recordings");
  const body = $("recordings-list").tBodies[0];
  let rows = [];
  const render = () => {
    $("recordings-empty").hidden = rows.length > 0;
    $("recordings-list").hidden = rows.length === 0;
    body.replaceChildren(...rows.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.id = r.id;
      const cell = (text, label) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (label) td.dataset.label = t(label);
        return td;
      };
      const open = document.createElement("td");
      const link = document.createElement("a");
      link.className = "button";
      link.href = `/replay?id=${encodeURIComponent(r.id)}`;
      link.textContent = t("replay.list.open");
      link.setAttribute("aria-label", `${t("replay.list.open")}: ${formatDateTime(r.started_unix)}`);
      open.append(link);
      tr.append(cell(formatDateTime(r.started_unix), "replay.list.started"),
        cell(formatDuration(r.duration_ms), "replay.list.duration"),
        cell(people(r.participants), "replay.list.people"),
        cell(t(`recStatus.${r.status}`), "replay.list.status"), open);
      return tr;
    }));
  };
  section.hidden = false;
  say(t("replay.loading"));
  try {
    rows = await apiGet("/api/recordings");
    say("");
  } catch (err) {
    say(errorText(err));
  }
  render();
  window.addEventListener("tw:langchange", render);
}

function outline(s, count, last) {
  const input = [];
  for (let i = 0; i < count; i++) {
    const p = s.raw[i];
    input.push([p[0], p[1], s.pressured ? Math.max(0.05, p[3] / 4095) : 0.5]);
  }
  const shape = getStroke(input, {
    size: s.width, thinning: s.pressured ? 0.6 : 0, smoothing: 0.5, streamline: 0.3, simulatePressure: false, last,
  });
  const path = new Path2D();
  if (!shape.length) return path;
  path.moveTo(shape[0][0], shape[0][1]);
  for (let i = 0; i < shape.length; i++) {
    const [x0, y0] = shape[i];
    const [x1, y1] = shape[(i + 1) % shape.length];
    path.quadraticCurveTo(x0, y0, (x0 + x1) / 2, (y0 + y1) / 2);
  }
  path.closePath();
  return path;
}

function segmentDistance(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const len = dx * dx + dy * dy;
  const k = len === 0 ? 0 : Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len));
  return Math.hypot(ax + k * dx - px, ay + k * dy - py);
}

// -- audio --------------------------------------------------------------------------------------

/** A silent 8-bit mono WAV of `ms` milliseconds: the replay's clock. */
function silentWav(ms) {
  const samples = Math.max(1, Math.ceil((ms / 1000) * SILENT_RATE));
  const buffer = new ArrayBuffer(44 + samples);
  const v = new DataView(buffer);
  const ascii = (at, text) => [...text].forEach((c, i) => v.setUint8(at + i, c.charCodeAt(0)));
  ascii(0, "RIFF");
  v.setUint32(4, 36 + samples, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, SILENT_RATE, true);
  v.setUint32(28, SILENT_RATE, true); // bytes per second
  v.setUint16(32, 1, true); // block align
  v.setUint16(34, 8, true); // bits per sample
  ascii(36, "data");
  v.setUint32(40, samples, true);
  new Uint8Array(buffer, 44).fill(128); // 8-bit PCM is unsigned: 128 is silence
  return new Blob([buffer], { type: "audio/wav" });
}

function loaded(media) {
  return new Promise((resolve, reject) => {
    if (media.readyState >= 1) {
      resolve(media);
      return;
    }
    media.addEventListener("loadedmetadata", () => resolve(media), { once: true });
    media.addEventListener("error", () => reject(new Error(media.error?.message || "audio could not be read")),
      { once: true });
  });
}

/** The voice of the participant with export `label` ("tutor", "student", ...), or null if it never spoke. */
async function speakerTrack(id, label) {
  try {
    const blob = await apiBlob(`/api/recordings/${encodeURIComponent(id)}/audio/${encodeURIComponent(label)}.opus`,
      "audio/ogg");
    const audio = document.createElement("audio");
    audio.id = `voice-${label}`;
    audio.dataset.label = label;
    audio.preload = "auto";
    audio.src = URL.createObjectURL(new Blob([blob], { type: "audio/ogg; codecs=opus" }));
    audio.hidden = true;
    document.body.append(audio);
    await loaded(audio);
    return audio;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null; // that participant never spoke
    console.warn(`replay: no ${label} audio`, err);
    return null;
  }
}

// -- the player ---------------------------------------------------------------------------------

const FLOOR_TYPES = new Set(["hand", "question", "stage", "moderate"]);

async function showRecording(id) {
  const player = $("player");
  say(t("replay.loading"));
  let manifest;
  let doc;
  let voices;
  try {
    [manifest, doc] = await Promise.all([
      apiGet(`/api/recordings/${encodeURIComponent(id)}`),
      apiGet(`/api/recordings/${encodeURIComponent(id)}/events`),
    ]);
    // only those with a voice (a class's viewers mostly have none; an older server does not say)
    const speaking = (doc.participants || []).filter((p) => p.speaks !== false);
    voices = await Promise.all(speaking.map((p) => speakerTrack(id, p.label)));
  } catch (err) {
    say(t("replay.loadFailed", { msg: errorText(err) }));
    return;
  }
  const { strokes, pages, focus } = buildStrokes(doc.events || [], manifest.clock_offsets, doc.participants || []);
  const lastInk = strokes.reduce((m, s) => Math.max(m, s.doneMs, s.removedMs ?? 0, ...s.hidden.map((h) => h[1] ?? 0)), 0);
  const durationMs = Math.max(1000, Math.ceil(Math.max(doc.duration_ms || 0, manifest.duration_ms || 0, lastInk)));
  const speakers = voices.filter(Boolean);

  const audio = document.createElement("audio");
  audio.id = "replay-audio";
  audio.preload = "auto";
  audio.hidden = true;
  audio.src = URL.createObjectURL(silentWav(durationMs));
  document.body.append(audio);
  try {
    await loaded(audio);
  } catch (err) {
    say(t("replay.loadFailed", { msg: err.message }));
    return;
  }

  const canvas = $("replay-ink");
  const ctx = canvas.getContext("2d");
  const seek = $("seek");
  const clock = $("clock");
  const speed = $("speed");
  const followBox = $("follow");
  const pageNav = $("pages");
  let page = pages[0];
  let drawnAt = null;
  let scrubbing = false;
  let view = { k: 1, dx: 0, dy: 0 }; // page units -> CSS pixels

  seek.max = String(durationMs);
  const heading = () => {
    $("player-heading").textContent = `${formatDateTime(manifest.started_unix)} · ${formatDuration(durationMs)}`;
  };
  heading();

  const currentMs = () => audio.currentTime * 1000;

  // Voices follow the clock element.
  function syncVoices(force = false) {
    const now = audio.currentTime;
    for (const voice of speakers) {
      voice.playbackRate = audio.playbackRate;
      const inside = Number.isFinite(voice.duration) ? now < voice.duration : true;
      if (!inside) {
        if (!voice.paused) voice.pause();
        continue;
      }
      if (force || Math.abs(voice.currentTime - now) > DRIFT_S) voice.currentTime = now;
      if (audio.paused || audio.ended) {
        if (!voice.paused) voice.pause();
      } else if (voice.paused) {
        voice.play().catch(() => {});
      }
    }
  }

  function pageAt(now) {
    let p = pages[0];
    for (const [at, pg] of focus) {
      if (at > now) break;
      p = pg;
    }
    return p;
  }

  function layout() {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 300;
    const h = canvas.clientHeight || (w * PAGE_HEIGHT) / PAGE_WIDTH;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    // the page, and any ink a pen put beyond it, fitted into the canvas
    let x1 = PAGE_WIDTH;
    let y1 = PAGE_HEIGHT;
    for (const s of strokes) {
      if (s.page !== page) continue;
      for (const p of s.raw) {
        if (p[0] > x1) x1 = p[0];
        if (p[1] > y1) y1 = p[1];
      }
    }
    const k = Math.min(w / x1, h / y1);
    view = { k, dx: (w - x1 * k) / 2, dy: 0, dpr };
    drawnAt = null;
  }

  function draw(now) {
    if (followBox.checked) setPage(pageAt(now), false);
    const { k, dx, dy, dpr } = view;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(k * dpr, 0, 0, k * dpr, dx * dpr, dy * dpr);
    for (const s of strokes) {
      if (s.page !== page) continue;
      const count = visibleCount(s, now);
      if (count === 0 || s.raw.length === 0) continue;
      let path;
      if (count >= s.raw.length && s.endMs !== null) {
        s.whole ??= outline(s, s.raw.length, true);
        path = s.whole;
      } else {
        if (!s.partial || s.partial[0] !== count) s.partial = [count, outline(s, count, false)];
        path = s.partial[1];
      }
      ctx.fillStyle = s.tool === "eraser" ? "#ffffff" : s.color;
      ctx.fill(path);
    }
    if (!scrubbing) seek.value = String(Math.round(now));
    seek.setAttribute("aria-valuetext", formatDuration(now));
    clock.textContent = t("replay.clock", { now: formatDuration(now), total: formatDuration(durationMs) });
    drawnAt = now;
  }

  function setPage(p, byHand) {
    if (byHand) followBox.checked = false;
    if (p !== page) {
      page = p;
      layout();
    }
    for (const b of pageNav.children) b.setAttribute("aria-pressed", String(Number(b.dataset.page) === page));
  }

  function renderPages() {
    pageNav.replaceChildren(...pages.map((p) => {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.page = String(p);
      b.textContent = t("replay.page", { n: p + 1 });
      b.setAttribute("aria-pressed", String(p === page));
      b.addEventListener("click", () => {
        setPage(p, true);
        draw(currentMs());
      });
      return b;
    }));
    pageNav.hidden = pages.length < 2;
  }

  function seekMs(ms) {
    const clamped = Math.max(0, Math.min(durationMs, Number(ms) || 0));
    audio.currentTime = clamped / 1000;
    syncVoices(true);
    draw(clamped);
    return clamped;
  }

  /**
   * The stroke drawn at (x, y), CSS pixels from the canvas's top left, at the current time: the
   * nearest within its half-width plus 10 px, the later one on a tie; null if none.
   * {id, pid, role, label, page, tool, startMs (its first point: where a tap seeks), endMs, points}.
   */
  function strokeAt(x, y) {
    const now = currentMs();
    const { k, dx, dy } = view;
    const px = (x - dx) / k;
    const py = (y - dy) / k;
    let best = null;
    let bestDistance = Infinity;
    for (const s of strokes) {
      if (s.page !== page) continue;
      const count = visibleCount(s, now);
      if (count === 0 || s.raw.length === 0) continue;
      const reach = s.width / 2 + TAP_SLOP_PX / k;
      let d = Infinity;
      if (count === 1) d = Math.hypot(s.raw[0][0] - px, s.raw[0][1] - py);
      for (let i = 1; i < count; i++) {
        const a = s.raw[i - 1];
        const b = s.raw[i];
        d = Math.min(d, segmentDistance(px, py, a[0], a[1], b[0], b[1]));
      }
      // the nearest within reach; on a tie the later stroke (drawn on top)
      if (d <= reach && d <= bestDistance) {
        best = s;
        bestDistance = d;
      }
    }
    if (!best) return null;
    return { id: best.id, pid: best.pid, role: best.role, label: best.label, page: best.page, tool: best.tool,
      startMs: best.startMs,
      endMs: best.endMs, points: best.raw.length };
  }

  // controls
  $("play").addEventListener("click", () => {
    if (audio.ended || currentMs() >= durationMs) seekMs(0);
    audio.play().catch((err) => say(err.message));
    syncVoices(true);
  });
  $("pause").addEventListener("click", () => {
    audio.pause();
    syncVoices();
  });
  for (const name of ["play", "pause", "ended", "ratechange", "seeked"]) {
    audio.addEventListener(name, () => {
      syncVoices(name === "seeked");
      $("player").dataset.playing = String(!audio.paused && !audio.ended);
    });
  }
  speed.addEventListener("change", () => {
    audio.playbackRate = Number(speed.value) || 1;
    syncVoices();
  });
  seek.addEventListener("input", () => {
    scrubbing = true;
    seekMs(Number(seek.value));
  });
  seek.addEventListener("change", () => {
    scrubbing = false;
    seekMs(Number(seek.value));
  });
  seek.addEventListener("keydown", (event) => {
    // Native steps would be 1 ms: move by seconds instead.
    const steps = { ArrowLeft: -5000, ArrowDown: -5000, ArrowRight: 5000, ArrowUp: 5000, PageDown: -30000,
      PageUp: 30000, Home: -Infinity, End: Infinity };
    if (!(event.key in steps)) return;
    event.preventDefault();
    const step = steps[event.key];
    seekMs(step === -Infinity ? 0 : step === Infinity ? durationMs : currentMs() + step);
  });
  followBox.addEventListener("change", () => draw(currentMs()));
  canvas.addEventListener("click", (event) => {
    const box = canvas.getBoundingClientRect();
    const hit = strokeAt(event.clientX - box.left - canvas.clientLeft, event.clientY - box.top - canvas.clientTop);
    if (!hit) return;
    const at = seekMs(hit.startMs);
    say(t("replay.jumped", { time: formatDuration(at) }));
  });
  new ResizeObserver(() => {
    layout();
    draw(currentMs());
  }).observe(canvas);
  window.addEventListener("tw:langchange", () => {
    heading();
    renderPages();
    renderVoices();
    draw(currentMs());
  });

  const userOf = new Map((doc.participants || []).map((p) => [p.label, p.user_id]));
  function renderVoices() {
    const name = (label) => {
      if (label.startsWith("viewer-")) return t("replay.audio.viewer", { user: userOf.get(label) ?? label });
      const key = `replay.audio.${label}`;
      const text = t(key);
      return text === key ? label : text;
    };
    $("voices").textContent = speakers.length ? speakers.map((v) => name(v.dataset.label)).join(" · ") : t("replay.audio.none");
  }

  let lastSync = 0;
  function tick(stamp) {
    const now = currentMs();
    if (now !== drawnAt) draw(now);
    if (!audio.paused && stamp - lastSync > 500) {
      lastSync = stamp;
      syncVoices();
    }
    requestAnimationFrame(tick);
  }

  // A class's floor on the timeline: hands, questions, the stage, moderation; each seeks to its time.
  const floorEvents = (doc.events || []).filter((e) => FLOOR_TYPES.has(e.type));
  function renderFloor() {
    $("floor-panel").hidden = floorEvents.length === 0;
    $("floor").replaceChildren(...floorEvents.map((e) => {
      const li = document.createElement("li");
      li.dataset.type = e.type;
      li.dataset.ms = String(e.session_ms);
      const go = document.createElement("button");
      go.type = "button";
      go.className = "floor-time";
      go.textContent = formatDuration(e.session_ms);
      go.addEventListener("click", () => seekMs(e.session_ms));
      const who = userOf.get(e.seat) ?? e.seat;
      const target = (pid) => {
        const p = (doc.participants || []).find((q) => q.pid === pid);
        return p ? p.user_id : `#${pid}`;
      };
      const text = document.createElement("span");
      text.textContent = e.type === "question" ? t("replay.floor.question", { who, text: e.text })
        : e.type === "hand" ? t(e.raised ? "replay.floor.handUp" : "replay.floor.handDown", { who })
        : e.type === "stage" ? t(`replay.floor.stage.${e.action}`, { who, target: target(e.target) })
        : t(`replay.floor.moderate.${e.action}`, { who, target: target(e.target) });
      li.append(go, " ", text);
      return li;
    }));
  }
  window.addEventListener("tw:langchange", renderFloor);

  player.hidden = false;
  renderFloor();
  renderPages();
  renderVoices();
  layout();
  draw(0);
  requestAnimationFrame(tick);
  say("");
  window.tw = { ...(window.tw || {}), replay: {
    audio, speakers: Object.fromEntries(speakers.map((v) => [v.dataset.label, v])), durationMs, strokes,
    seekMs, currentMs, strokeAt, page: () => page,
  } };
  document.body.dataset.replay = "ready";
}

// -- a session's recording, from the end screen (?session=ID) ---------------------------------------

const PREPARING_POLL_MS = 2000;
const PREPARING_FOR_MS = 120_000;

/**
 * The recording of session `sessionId` once it is complete; until then "being prepared" (the
 * archiver finalises it as the session ends), asked again every couple of seconds.
 */
async function showSession(sessionId) {
  const started = Date.now();
  document.body.dataset.replay = "preparing";
  for (;;) {
    let rows = [];
    try {
      rows = await apiGet("/api/recordings");
    } catch (err) {
      say(errorText(err));
    }
    const row = rows.find((r) => r.session_id === sessionId && r.status !== "recording")
      ?? rows.find((r) => r.session_id === sessionId);
    if (row && row.status !== "recording") {
      history.replaceState(null, "", `/replay?id=${encodeURIComponent(row.id)}`);
      showRecording(row.id);
      return;
    }
    say(t("replay.preparing"));
    if (Date.now() - started > PREPARING_FOR_MS) {
      showList();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, PREPARING_POLL_MS));
  }
}

// -- start ----------------------------------------------------------------------------------------

if (auth) {
  initChrome(auth);
  $("home").href = auth.role === "tutor" ? "/tutor" : auth.role === "student" ? "/student" : "/";
  const params = new URLSearchParams(location.search);
  const id = params.get("id");
  if (id) showRecording(id);
  else if (params.get("session")) showSession(params.get("session"));
  else showList();
}
