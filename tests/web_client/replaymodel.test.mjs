// The replay's ink model (web_client/js/replaymodel.js): when each stroke is on the page, through
// undo, clear and its undo (Restore), as the room decided them. Run by tests/web_client/test_web_session.py.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { buildStrokes, visibleCount } from '../../web_client/js/replaymodel.js';

const begin = (ms, pid, stroke, page = 0) => ({ type: 'stroke_begin', session_ms: ms, pid, seat: 'x', stroke, page,
  tool: 'pen', color: '#000000ff', width: 10, flags: 0, device_t0: 0 });
const points = (ms, pid, stroke) => ({ type: 'stroke_points', session_ms: ms, pid, stroke, points: [[1, 1, 0, 0, 0, 0]] });
const on = (strokes, now) => strokes.filter((s) => visibleCount(s, now) > 0).map((s) => s.id);

test('a Restore shows the cleared strokes again from its time; an Undo of another names its author', () => {
  const events = [
    begin(100, 1, 1), points(110, 1, 1), begin(200, 2, 1), points(210, 2, 1),
    { type: 'clear', session_ms: 1000, pid: 1, page: 0 },
    begin(1100, 2, 2), points(1110, 2, 2),
    { type: 'clear', session_ms: 1500, pid: 1, page: 0 },
    { type: 'clear', session_ms: 1600, pid: 1, page: 0 }, // an empty page's: keeps no layer
    { type: 'restore', session_ms: 2000, pid: 2, page: 0 }, // brings back 2-2 (the latest layer)
    { type: 'restore', session_ms: 3000, pid: 1, page: 0 }, // then 1-1 and 2-1
    { type: 'undo', session_ms: 4000, pid: 1, stroke: 1, author: 2 }, // the tutor takes the student's 2-1
  ];
  const { strokes } = buildStrokes(events, {});
  assert.deepEqual(on(strokes, 500), ['1-1', '2-1']);
  assert.deepEqual(on(strokes, 1200), ['2-2']);
  assert.deepEqual(on(strokes, 1800), []);
  assert.deepEqual(on(strokes, 2500), ['2-2']);
  assert.deepEqual(on(strokes, 3500), ['1-1', '2-1', '2-2']);
  assert.deepEqual(on(strokes, 4500), ['1-1', '2-2']);
  const final = Object.fromEntries(strokes.map((s) => [s.id, s.removedBy]));
  assert.deepEqual(final, { '1-1': null, '2-1': 'undo', '2-2': null });
});
