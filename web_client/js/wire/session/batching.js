// Link-adaptive batching of ink, the mirror of wire/session/batching.py: how long the client
// holds the newest StrokePoints op so that points coming meanwhile merge into it (one frame
// instead of several). Nothing is held on a good link; on a slow one the hold is half of the ack
// delay (smoothed, gain 1/8) or of the oldest op's wait in flight, beyond the server's ack
// coalescing and a good link's round trip, never more than maxBatchS (100 ms). Sans-I/O.

export const BATCH_DEFAULTS = Object.freeze({
  maxBatchS: 0.100, // the longest an ink batch is held for merging (0: never held)
  goodRttS: 0.150, // ack delays up to this (beyond the server's coalescing) hold nothing
  ackDelayS: 0.040, // the server's TUTORWIRE_ACK_DELAY_MS, taken out of the ack delay
  minHoldS: 0.016, // a shorter hold gains nothing over the pen app's own 16 ms batches: 0
});

/** The hold for the newest ink batch, from the ack delays and the backlog seen so far. */
export class LinkBatcher {
  constructor(policy = BATCH_DEFAULTS) {
    this.policy = { ...BATCH_DEFAULTS, ...policy };
    this.srttS = null; // smoothed delay from sending an op to its Ack
  }

  /** An op was acknowledged `delayS` after it was sent. */
  observeAck(delayS) {
    const d = Math.max(0, delayS);
    this.srttS = this.srttS === null ? d : this.srttS + (d - this.srttS) / 8;
  }

  /** How long to hold the newest ink batch; `oldestInFlightS`: how long the oldest unacknowledged op has waited. */
  holdS(oldestInFlightS = 0) {
    const p = this.policy;
    if (p.maxBatchS <= 0) return 0;
    const delay = Math.max(this.srttS ?? 0, oldestInFlightS);
    const hold = Math.max(0, delay - p.ackDelayS - p.goodRttS) / 2;
    return hold >= p.minHoldS ? Math.min(hold, p.maxBatchS) : 0;
  }
}
