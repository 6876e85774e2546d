// The ping cadence with its fast start, and deadlines (wire/session/timers.py).

// Pings at join: at once and several more within the first second, so that a good clock
// offset is known almost at once (the recordings need it for the first strokes). Then one every
// interval.
export const FAST_START_S = Object.freeze([0.0, 0.1, 0.25, 0.5, 1.0]);

/** When the next Ping is due: at start + fastStart[i], then every intervalS after the last of those. */
export class PingSchedule {
  constructor(intervalS, fastStart = FAST_START_S) {
    this.intervalS = intervalS;
    this.fastStart = fastStart.length ? [...fastStart] : [0];
    this.due = null;
    this._origin = 0;
    this._index = 0;
  }

  start(now) {
    this._origin = now;
    this._index = 0;
    this.due = this.intervalS <= 0 ? null : now + this.fastStart[0];
  }

  stop() {
    this.due = null;
  }

  isDue(now) {
    return this.due !== null && now >= this.due;
  }

  /** The ping of the current slot was sent (or skipped): schedule the next, never a burst to catch up. */
  fired(now) {
    if (this.due === null) return;
    this._index += 1;
    const fast = this.fastStart;
    if (this._index < fast.length) {
      this.due = Math.max(now, this._origin + fast[this._index]);
      return;
    }
    const target = this._index === fast.length ? this._origin + fast[fast.length - 1] + this.intervalS
      : this.due + this.intervalS;
    this.due = target > now ? target : now + this.intervalS;
  }
}

/** The earliest of the deadlines that are set, or null. */
export function earliest(...deadlines) {
  let at = null;
  for (const d of deadlines) if (d !== null && d !== undefined && (at === null || d < at)) at = d;
  return at;
}
