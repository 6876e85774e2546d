// Clock offset and round-trip time from Ping/Pong timestamps (wire/clocksync.py).
//
// We ping with our clock t0; the server answers with t0 and its clock t1; we read t2 on the Pong.
// rtt = t2 - t0 and the server's clock minus ours is t1 - (t0 + t2) / 2. Of the last few samples
// the one with the smallest RTT gives the offset (the NTP clock filter, simplified).

export class ClockEstimator {
  constructor(window = 8) {
    this.window = window;
    this.samples = [];
  }

  /** Record one exchange; null (ignored) if its times are impossible. */
  add(t0, t1, t2) {
    const rtt = t2 - t0;
    if (rtt < 0) return null;
    const sample = { rttMs: rtt, offsetMs: t1 - (t0 + t2) / 2 };
    this.samples.push(sample);
    if (this.samples.length > this.window) this.samples.shift();
    return sample;
  }

  /** The latest round trip (what a connection indicator shows). */
  get rttMs() {
    return this.samples.length ? this.samples[this.samples.length - 1].rttMs : null;
  }

  /** The other clock minus ours, from the least-delayed recent sample. */
  get offsetMs() {
    if (!this.samples.length) return null;
    return this.samples.reduce((a, b) => (b.rttMs < a.rttMs ? b : a)).offsetMs;
  }
}
