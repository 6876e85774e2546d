// Reconnect delays: exponential backoff with full jitter, capped low, never giving up
// (wire/session/backoff.py).
//
// After the n-th failure in a row (n = 0, 1, 2, ...) the client waits a uniformly random time in
// [0, min(cap, initial * 2^n)). The counter goes back to 0 once a link has stayed up long enough.

export const BACKOFF_DEFAULTS = Object.freeze({
  initialS: 0.1,
  capS: 1.0,
  refusedRetryS: 5.0, // after a join refusal that may pass (2008 TOO_MANY_JOINS, 2009, 3004)
});

export class Backoff {
  /** `random`: () => [0, 1), passed in so that tests can fix it. */
  constructor(policy, random) {
    if (!(policy.initialS > 0 && policy.initialS <= policy.capS) || !(policy.refusedRetryS > 0)) {
      throw new RangeError('backoff needs 0 < initialS <= capS and refusedRetryS > 0');
    }
    this.policy = policy;
    this.random = random;
    this.failures = 0;
  }

  /** The upper end of the delay after `failures` failures before this one. */
  bound(failures) {
    return Math.min(this.policy.capS, this.policy.initialS * 2 ** Math.min(failures, 64));
  }

  /** The wait before the next attempt after a network failure (full jitter). */
  nextDelay() {
    const delay = this.random() * this.bound(this.failures);
    this.failures += 1;
    return delay;
  }

  /** The wait after a join refusal that may pass: long enough not to keep a counting server busy. */
  refusedDelay() {
    this.failures += 1;
    return this.policy.refusedRetryS * (0.5 + 0.5 * this.random());
  }

  reset() {
    this.failures = 0;
  }
}
