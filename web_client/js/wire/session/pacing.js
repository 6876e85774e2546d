// The client's pacing under the server's rate limit (wire/session/pacing.py).
//
// The client keeps a smaller, slower copy of the server's token bucket: rate_per_s * factor
// tokens a second, at most rate_burst // 2 saved, full at the Welcome. Every frame it sends
// takes a token. Ops wait until one is there; frames that must not wait (a Pong, signalling)
// take theirs at once and may leave the bucket in debt, which later ops then wait out.

const EPS = 1e-9; // float refill arithmetic must not leave a token at 0.9999999 forever

export class Pacer {
  constructor(rate, burst, now) {
    if (!(rate > 0) || !(burst >= 1)) throw new RangeError('pacing needs rate > 0 and burst >= 1');
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst;
    this.stamp = now;
  }

  /** The pacing for a server that announced `ratePerS` and `rateBurst`. */
  static under(ratePerS, rateBurst, now, rateFactor = 0.9) {
    return new Pacer(ratePerS * rateFactor, Math.max(1, Math.floor(rateBurst / 2)), now);
  }

  _refill(now) {
    if (now > this.stamp) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.stamp) * this.rate);
      this.stamp = now;
    }
  }

  /** A frame that waits for its token may go now. */
  ready(now) {
    this._refill(now);
    return this.tokens >= 1 - EPS;
  }

  /** One frame goes out now (whether or not a token was there). */
  spend(now) {
    this._refill(now);
    this.tokens -= 1;
  }

  /** When `ready` will next be true (`now` if it is). */
  readyAt(now) {
    this._refill(now);
    return this.tokens >= 1 - EPS ? now : now + (1 - this.tokens) / this.rate;
  }
}
