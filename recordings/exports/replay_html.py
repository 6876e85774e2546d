"""One self-contained HTML page that replays a session offline: ink and audio together.

Everything is inside the file: the mixed audio as a base64 WAV data URI (resampled to
``audio_rate``, 16 kHz by default, a third of the size of 48 kHz and plenty for speech), the
strokes as JSON, and plain JavaScript (no libraries, no network). The audio element is the
clock: the ink shown is the ink written up to ``audio.currentTime`` on the session clock (the
WAV starts at session clock 0 and covers the whole session). Controls: play/pause, a seek
slider, speed 0.5x to 2x, a tab per page, and "follow" (show the page where the latest page
switch or stroke happened). Strokes removed by undo or clear disappear when they were removed, and a cleared
stroke that a Restore brought back shows again from then (``Stroke.hidden``).
"""

from __future__ import annotations

import base64
import html
import json
from math import gcd
from typing import Any

import numpy as np

from wire import messages as m

from .model import RecordingData
from .strokes import Stroke, replay
from .wav import RATE, Pcm, mix, wav_bytes


def _resample(pcm: Pcm, rate: int) -> Pcm:
    if rate == RATE:
        return pcm
    from scipy.signal import resample_poly

    g = gcd(rate, RATE)
    out = np.asarray(resample_poly(pcm.astype(np.float64), rate // g, RATE // g), dtype=np.float64)
    resampled: Pcm = np.clip(np.round(out), -32768, 32767).astype(np.int16)
    return resampled


def _stroke_json(s: Stroke) -> dict[str, Any]:
    r, g, b, a = (s.color >> 24) & 0xFF, (s.color >> 16) & 0xFF, (s.color >> 8) & 0xFF, s.color & 0xFF
    return {
        "id": s.key, "seat": s.label, "page": s.page, "tool": s.tool.name.lower(),
        "color": f"rgba({r},{g},{b},{a / 255:.3f})", "width": s.width, "begin": s.begin_ms,
        "removed": s.removed_ms if s.removed else None, "hidden": [list(h) for h in s.hidden],
        "x": [p.x for p in s.points], "y": [p.y for p in s.points],
        "t": [round(p.session_ms, 1) for p in s.points], "p": [p.pressure for p in s.points],
    }


def replay_data(data: RecordingData) -> dict[str, Any]:
    """What the page's script gets: strokes with session times, and when each page had focus."""
    strokes = replay(data)
    focus = [[ev.session_ms, ev.body.page] for ev in data.events if isinstance(ev.body, m.PageSwitch)]
    focus += [[s.begin_ms, s.page] for s in strokes]
    focus.sort(key=lambda f: f[0])
    pages = sorted({s.page for s in strokes} | {p for _, p in focus} | {0})
    return {
        "session_id": data.session_id, "duration_ms": data.duration_ms, "pages": pages, "focus": focus,
        "participants": data.user_ids(),
        "strokes": [_stroke_json(s) for s in strokes],
    }


def _script_json(value: Any) -> str:
    # Safe inside <script>: no "<", ">" or "&" can end the element or open a comment.
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def replay_bundle(data: RecordingData, audio_rate: int = 16_000) -> str:
    """The replay page as HTML text (UTF-8)."""
    pcm = _resample(mix(data), audio_rate)
    audio_uri = "data:audio/wav;base64," + base64.b64encode(wav_bytes(pcm, audio_rate)).decode("ascii")
    title = html.escape(f"Session {data.session_id}")
    return (_PAGE.replace("{{TITLE}}", title)
            .replace("{{DATA}}", _script_json(replay_data(data)))
            .replace("{{AUDIO}}", audio_uri))


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{TITLE}}: replay</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 16px; background: #fafafa; color: #222; }
  h1 { font-size: 18px; margin: 0 0 8px; }
  #pages button { margin-right: 4px; padding: 3px 10px; border: 1px solid #bbb; background: #fff; }
  #pages button.on { background: #3b7dd8; color: #fff; border-color: #3b7dd8; }
  #ink { display: block; margin: 8px 0; background: #fff; border: 1px solid #ccc; max-width: 100%; }
  #controls { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
  #seek { flex: 1; min-width: 240px; }
  #clock { font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<h1>{{TITLE}}</h1>
<nav id="pages"></nav>
<canvas id="ink" width="960" height="640"></canvas>
<div id="controls">
  <button id="play" type="button">Play</button>
  <input id="seek" type="range" min="0" max="0" step="10" value="0" aria-label="position">
  <span id="clock">0:00 / 0:00</span>
  <label>Speed <select id="speed">
    <option value="0.5">0.5x</option><option value="0.75">0.75x</option><option value="1" selected>1x</option>
    <option value="1.25">1.25x</option><option value="1.5">1.5x</option><option value="2">2x</option>
  </select></label>
  <label><input id="follow" type="checkbox" checked> follow the writing</label>
</div>
<audio id="audio" preload="auto" src="{{AUDIO}}"></audio>
<script type="application/json" id="tw-data">{{DATA}}</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("tw-data").textContent);
  var audio = document.getElementById("audio");
  var canvas = document.getElementById("ink");
  var ctx = canvas.getContext("2d");
  var seek = document.getElementById("seek");
  var clock = document.getElementById("clock");
  var playButton = document.getElementById("play");
  var follow = document.getElementById("follow");
  var tabs = document.getElementById("pages");
  var page = data.pages[0];
  var seeking = false;
  var lastDrawn = null;
  seek.max = String(data.duration_ms);

  var byPage = {};
  data.pages.forEach(function (p) { byPage[p] = []; });
  data.strokes.forEach(function (s) { byPage[s.page].push(s); });

  function bounds(strokes) {  // the page's ink, fitted into the canvas with a margin
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    strokes.forEach(function (s) {
      for (var i = 0; i < s.x.length; i++) {
        x0 = Math.min(x0, s.x[i]); x1 = Math.max(x1, s.x[i]);
        y0 = Math.min(y0, s.y[i]); y1 = Math.max(y1, s.y[i]);
      }
    });
    if (x0 === Infinity) { return { x: 0, y: 0, k: 1 }; }
    var w = Math.max(x1 - x0, 1), h = Math.max(y1 - y0, 1), pad = 0.05;
    var k = Math.min(canvas.width / (w * (1 + 2 * pad)), canvas.height / (h * (1 + 2 * pad)));
    return { x: x0 - w * pad, y: y0 - h * pad, k: k };
  }
  var fit = {};
  data.pages.forEach(function (p) { fit[p] = bounds(byPage[p]); });

  function countUpTo(times, now) {  // how many points have a time <= now (binary search)
    var lo = 0, hi = times.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (times[mid] <= now) { lo = mid + 1; } else { hi = mid; } }
    return lo;
  }

  function focusAt(now) {
    var f = null;
    for (var i = 0; i < data.focus.length && data.focus[i][0] <= now; i++) { f = data.focus[i][1]; }
    return f === null ? data.pages[0] : f;
  }

  function fmt(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function draw(now) {
    if (follow.checked) { setPage(focusAt(now), false); }
    var f = fit[page];
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    byPage[page].forEach(function (s) {
      if (s.begin > now || s.hidden.some(function (h) { return h[0] <= now && (h[1] === null || now < h[1]); })) {
        return;
      }
      var n = countUpTo(s.t, now);
      if (n === 0) { return; }
      ctx.globalAlpha = s.tool === "highlighter" ? 0.35 : 1;
      ctx.globalCompositeOperation = s.tool === "eraser" ? "destination-out" : "source-over";
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = Math.max(1, s.width * f.k);
      ctx.beginPath();
      ctx.moveTo((s.x[0] - f.x) * f.k, (s.y[0] - f.y) * f.k);
      if (n === 1) {
        ctx.arc((s.x[0] - f.x) * f.k, (s.y[0] - f.y) * f.k, ctx.lineWidth / 2, 0, 2 * Math.PI);
        ctx.fill();
        return;
      }
      for (var i = 1; i < n; i++) { ctx.lineTo((s.x[i] - f.x) * f.k, (s.y[i] - f.y) * f.k); }
      ctx.stroke();
    });
    ctx.globalAlpha = 1;
    ctx.globalCompositeOperation = "source-over";
    if (!seeking) { seek.value = String(Math.round(now)); }
    clock.textContent = fmt(now) + " / " + fmt(data.duration_ms);
    lastDrawn = now;
  }

  function now() { return audio.currentTime * 1000; }

  function setPage(p, manual) {
    if (manual) { follow.checked = false; }
    if (p !== page) { page = p; lastDrawn = null; }
    Array.prototype.forEach.call(tabs.children, function (b) {
      b.className = Number(b.dataset.page) === page ? "on" : "";
    });
  }

  data.pages.forEach(function (p) {
    var b = document.createElement("button");
    b.type = "button";
    b.dataset.page = String(p);
    b.textContent = "Page " + (p + 1);
    b.addEventListener("click", function () { setPage(p, true); draw(now()); });
    tabs.appendChild(b);
  });
  setPage(page, false);

  playButton.addEventListener("click", function () {
    if (audio.paused) { audio.play(); } else { audio.pause(); }
  });
  audio.addEventListener("play", function () { playButton.textContent = "Pause"; });
  audio.addEventListener("pause", function () { playButton.textContent = "Play"; });
  audio.addEventListener("ended", function () { playButton.textContent = "Play"; });
  document.getElementById("speed").addEventListener("change", function (e) {
    audio.playbackRate = Number(e.target.value);
  });
  follow.addEventListener("change", function () { draw(now()); });
  seek.addEventListener("input", function () {
    seeking = true;
    audio.currentTime = Number(seek.value) / 1000;
    draw(Number(seek.value));
  });
  seek.addEventListener("change", function () { seeking = false; });

  function tick() {
    var t = now();
    if (t !== lastDrawn) { draw(t); }
    window.requestAnimationFrame(tick);
  }
  draw(0);
  window.requestAnimationFrame(tick);
})();
</script>
</body>
</html>
"""
