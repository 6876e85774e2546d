// The network's grade in words (web_client/js/netgrade.js): good / fair / weak from the round
// trip and the voice's loss. Run by tests/web_client/test_web_session.py (`node --test`).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FAIR, GOOD, gradeNetwork, lossBetween } from '../../web_client/js/netgrade.js';

test('good, fair and weak from the round trip and the loss; a dropped link is weak', () => {
  assert.equal(gradeNetwork({}), 'good'); // nothing measured yet: nothing to worry about
  assert.equal(gradeNetwork({ rttMs: GOOD.rttMs }), 'good');
  assert.equal(gradeNetwork({ rttMs: GOOD.rttMs + 1 }), 'fair');
  assert.equal(gradeNetwork({ rttMs: FAIR.rttMs + 1 }), 'weak');
  assert.equal(gradeNetwork({ rttMs: 20, loss: GOOD.loss + 0.001 }), 'fair');
  assert.equal(gradeNetwork({ rttMs: 20, loss: FAIR.loss + 0.001 }), 'weak');
  assert.equal(gradeNetwork({ rttMs: 20, loss: 0, reconnecting: true }), 'weak');
  assert.equal(gradeNetwork({ rttMs: Number.NaN, loss: null }), 'good');
});

test('loss over a window from cumulative counters', () => {
  assert.equal(lossBetween(null, { received: 10, lost: 0 }), null);
  assert.equal(lossBetween({ received: 10, lost: 1 }, { received: 10, lost: 1 }), null); // nothing came
  assert.equal(lossBetween({ received: 100, lost: 0 }, { received: 190, lost: 10 }), 0.1);
  assert.equal(lossBetween({ received: 100, lost: 5 }, { received: 50, lost: 5 }), null); // a new leg restarted the counters
});
