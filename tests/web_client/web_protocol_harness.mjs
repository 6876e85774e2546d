// Runs the browser's codec (web_client/js/wire/codec.js and ink.js) for tests/web_client/test_web_protocol.py: one JSON request per
// line on stdin, one JSON answer per line on stdout. Binary values travel as {"$bin": hex}.
//
//   {"op": "frame", "hex"}                  decode a frame, re-encode it: {"ok", "msg", "hex"} or {"ok": false, "code"}
//   {"op": "frames", "hexes": [hex, ...]}   the same for each: {"ok", "results": [answer, ...]}
//   {"op": "encode", "msg"}                 encode a message given as JSON: {"ok", "hex"}
//   {"op": "encode_points", "flags", "batches": [[point, ...], ...]}   {"ok", "blobs": [hex, ...]}
//   {"op": "decode_points", "flags", "batches": [{"hex", "count"}, ...]}
//                                           {"ok", "results": [{"ok", "points"} | {"ok": false, "code"}, ...]}
//     (one predictor state across the batches; a refused batch leaves it as it was)
//   {"op": "replica", "hexes": [hex, ...]}  a fresh Replica applies the frames (a Welcome, Snapshots, Events) in order:
//                                           {"ok", "pages": [[[pid, stroke], ...], ...], "layers": [[[[pid, stroke], ...], ...], ...],
//                                            "participants": {pid: {granted, left, online}}}

import { createInterface } from 'node:readline';

import { decodeFrame, encodeMessage } from '../../web_client/js/wire/codec.js';
import { ProtocolError } from '../../web_client/js/wire/errors.js';
import { PointState, decodePoints, encodePoints } from '../../web_client/js/wire/ink.js';
import { Replica } from '../../web_client/js/wire/replica.js';

const toHex = (bytes) => Buffer.from(bytes).toString('hex');
const fromHex = (hex) => new Uint8Array(Buffer.from(hex, 'hex'));

function toJson(value) {
  if (value instanceof Uint8Array) return { $bin: toHex(value) };
  if (Array.isArray(value)) return value.map(toJson);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]));
  }
  return value;
}

function fromJson(value) {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value !== null && typeof value === 'object') {
    if ('$bin' in value) return fromHex(value.$bin);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromJson(v)]));
  }
  return value;
}

function refusal(exc) {
  if (exc instanceof ProtocolError) return { ok: false, code: exc.code, message: exc.message };
  return { ok: false, code: null, message: `${exc && exc.name}: ${exc && exc.message}` }; // never expected
}

function frame(hex) {
  let msg;
  try {
    msg = decodeFrame(fromHex(hex));
  } catch (exc) {
    return refusal(exc);
  }
  return { ok: true, msg: toJson(msg), hex: toHex(encodeMessage(msg)) };
}

function replicaOf(hexes) {
  const replica = new Replica();
  try {
    for (const hex of hexes) {
      const msg = decodeFrame(fromHex(hex));
      if (msg.type === 'Welcome') replica.welcome(msg, true);
      else if (msg.type === 'Snapshot') replica.snapshot(msg);
      else replica.event(msg);
    }
  } catch (exc) {
    return refusal(exc);
  }
  const keys = (page) => [...page.values()].map((s) => [s.pid, s.stroke]);
  return {
    ok: true,
    pages: replica.pages.map(keys),
    layers: replica.pages.map((_, i) => (replica.cleared.get(i) ?? []).map(keys)),
    participants: Object.fromEntries([...replica.participants].map(([pid, p]) => [pid,
      { granted: p.granted, left: p.left, online: p.online }])),
  };
}

function handle(req) {
  switch (req.op) {
    case 'frame':
      return frame(req.hex);
    case 'frames':
      return { ok: true, results: req.hexes.map(frame) };
    case 'replica':
      return replicaOf(req.hexes);
    case 'encode':
      return { ok: true, hex: toHex(encodeMessage(fromJson(req.msg))) };
    case 'encode_points': {
      const state = new PointState();
      return { ok: true, blobs: req.batches.map((batch) => toHex(encodePoints(batch, req.flags, state))) };
    }
    case 'decode_points': {
      const state = new PointState();
      const results = req.batches.map(({ hex, count }) => {
        try {
          return { ok: true, points: decodePoints(fromHex(hex), count, req.flags, state) };
        } catch (exc) {
          return refusal(exc);
        }
      });
      return { ok: true, results };
    }
    default:
      return { ok: false, code: null, message: `unknown op ${req.op}` };
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  let answer;
  try {
    answer = handle(JSON.parse(line));
  } catch (exc) {
    answer = { ok: false, code: null, message: `harness: ${exc && exc.stack}` };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
});
