// How good the network is, in words a teacher understands: 'good', 'fair' or 'weak', from the
// round-trip time of the session link and the loss of the voice packets. Pure: the session view
// feeds it numbers and shows the word (the numbers only on demand).

export const GOOD = { rttMs: 200, loss: 0.02 };
export const FAIR = { rttMs: 450, loss: 0.08 };

/**
 * `rttMs` (null: not measured yet), `loss` (0..1 of the voice packets in the last window, null:
 * unknown), `reconnecting` (the session link is down). Weak wins over fair wins over good.
 */
export function gradeNetwork({ rttMs = null, loss = null, reconnecting = false } = {}) {
  if (reconnecting) return 'weak';
  const rtt = typeof rttMs === 'number' && Number.isFinite(rttMs) ? rttMs : null;
  const lost = typeof loss === 'number' && Number.isFinite(loss) ? loss : null;
  if ((rtt !== null && rtt > FAIR.rttMs) || (lost !== null && lost > FAIR.loss)) return 'weak';
  if ((rtt !== null && rtt > GOOD.rttMs) || (lost !== null && lost > GOOD.loss)) return 'fair';
  return 'good';
}

/** Loss over a window from two readings of cumulative counters {received, lost}; null if none came. */
export function lossBetween(before, after) {
  if (!before || !after) return null;
  const received = after.received - before.received;
  const lost = after.lost - before.lost;
  if (received < 0 || lost < 0 || received + lost === 0) return null;
  return lost / (received + lost);
}
