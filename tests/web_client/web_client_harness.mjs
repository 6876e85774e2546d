// Runs the browser's session machine (web_client/js/wire/session/client.js) for
// tests/web_client/test_web_convergence.py, which owns the sockets: the test moves the bytes between
// a real server and this process, and tells it the time. One JSON request per line on stdin, one
// JSON answer per line on stdout; frames travel as hex.
//
//   {"op": "new", "id", "token", "role", "now"}     a ClientSession that connects at once
//   {"op": "opened", "id", "now"}                   its WebSocket opened
//   {"op": "frame", "id", "hex", "now"}             a binary frame from the server
//   {"op": "timer", "id", "now"}                    the time is `now` (handleTimer when due)
//   {"op": "act", "id", "now", "do", "n"}           an action of a user, as the pages do it:
//       stroke (end the open stroke, begin one on page 0 with n points), points (n more on the open
//       stroke), end, clear, restore, undo (our newest stroke on the page), undo-other (the first
//       stroke of another on the page), grant (the other participant may clear and undo ours)
//   {"op": "state", "id"}                           {pages, layers, lastSeq, outbox, state, rebases}
//
// Every answer but state's: {ok, send: [hex], open, close, timer, state, links, failures, errors}
// (failures: why each link was given up; errors: the codes of refused ops).

import { createInterface } from 'node:readline';

import { GRANTABLE } from '../../web_client/js/wire/roles.js';
import { ClientSession } from '../../web_client/js/wire/session/client.js';

const toHex = (bytes) => Buffer.from(bytes).toString('hex');
const fromHex = (hex) => new Uint8Array(Buffer.from(hex, 'hex'));

const clients = new Map(); // id -> {session, open, links, failures, errors}

function points(n, from) {
  return Array.from({ length: n }, (_, i) => ({ x: 100 + 7 * (from + i), y: 200 + 3 * (from + i), t: 5 * (from + i),
    pressure: 2000 + i }));
}

function act(c, now, what, n) {
  const s = c.session;
  const page = s.replica.pages[0];
  let id;
  switch (what) {
    case 'stroke':
      if (c.open !== null) s.endStroke(now, c.open);
      c.open = s.beginStroke(now, { page: 0 });
      c.written = 0;
      if (c.open !== null) s.addPoints(now, c.open, points(n, 0));
      c.written = n;
      return c.open !== null;
    case 'points':
      if (c.open === null) return false;
      c.written += n;
      return s.addPoints(now, c.open, points(n, c.written - n));
    case 'end':
      if (c.open === null) return false;
      [id, c.open] = [c.open, null];
      return s.endStroke(now, id);
    case 'clear': return s.clear(now, 0);
    case 'restore': return s.restore(now, 0);
    case 'undo': {
      const mine = [...page.values()].filter((st) => st.pid === s.pid);
      return mine.length > 0 && s.undo(now, mine[mine.length - 1].stroke);
    }
    case 'undo-other': {
      const theirs = [...page.values()].find((st) => st.pid !== s.pid);
      return theirs !== undefined && s.undo(now, theirs.stroke, theirs.pid);
    }
    case 'grant': {
      const other = [...s.replica.participants.keys()].find((pid) => pid !== s.pid);
      return other !== undefined && s.grant(now, other, GRANTABLE);
    }
    default: throw new Error(`no action ${what}`);
  }
}

function drive(c, now) {
  const s = c.session;
  const timer = s.getTimer();
  if (timer !== null && now >= timer) s.handleTimer(now);
}

function answer(c, extra = {}) {
  const s = c.session;
  for (const e of s.events()) {
    if (e.type === 'state' && e.state === 'backoff') c.failures.push(e.why);
    if (e.type === 'state' && e.state === 'connecting') c.links += 1;
    if (e.type === 'error' && !e.fatal) c.errors.push(e.code);
    if (e.type === 'error' && e.fatal) c.failures.push(e.message);
  }
  const open = s.takeOpenRequest();
  return { ok: true, send: s.dataToSend().map(toHex), open, close: s.takeCloseRequest(), timer: s.getTimer(),
    state: s.state, links: c.links, failures: c.failures, errors: c.errors, ...extra };
}

function strokes(map) {
  return [...map.values()].map((st) => [st.pid, st.stroke, st.points.length]);
}

function handle(req) {
  if (req.op === 'new') {
    const session = new ClientSession({ token: req.token, role: req.role });
    const c = { session, open: null, written: 0, links: 0, failures: [], errors: [] };
    clients.set(req.id, c);
    session.connect(req.now);
    return answer(c);
  }
  const c = clients.get(req.id);
  if (c === undefined) throw new Error(`no client ${req.id}`);
  const s = c.session;
  switch (req.op) {
    case 'opened': s.connectionMade(req.now); return answer(c);
    case 'frame': s.receiveFrame(fromHex(req.hex), req.now); drive(c, req.now); return answer(c);
    case 'timer': drive(c, req.now); return answer(c);
    case 'act': return answer(c, { taken: act(c, req.now, req.do, req.n ?? 0) });
    case 'state': return {
      ok: true, state: s.state, lastSeq: s.replica.lastSeq, outbox: s.outbox.size, rebases: s.replica.rebases,
      pages: s.replica.pages.map(strokes),
      layers: s.replica.pages.map((_, i) => (s.replica.cleared.get(i) ?? []).map(strokes)),
    };
    default: throw new Error(`no op ${req.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  let out;
  try {
    out = handle(JSON.parse(line));
  } catch (exc) {
    out = { ok: false, message: `${exc && exc.name}: ${exc && exc.message}\n${exc && exc.stack}` };
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
