// A token bucket with the clock passed in (wire/ratelimit.py): the client's pacing that keeps it
// under the rate limit the server announces in Welcome. Times are seconds.

export class TokenBucket {
  constructor(rate, burst, now) {
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst;
    this.stamp = now;
  }

  refill(now) {
    if (now > this.stamp) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.stamp) * this.rate);
      this.stamp = now;
    }
  }

  take(now) {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** Spend a token whether or not there is one (a frame that must not wait: Pong, signalling). */
  force(now) {
    this.refill(now);
    this.tokens = Math.max(-this.burst, this.tokens - 1);
  }

  /** Seconds from `now` until `take` would succeed (0 if it would now). */
  delay(now) {
    this.refill(now);
    return this.tokens >= 1 ? 0 : (1 - this.tokens) / this.rate;
  }
}
