// The client's ops that the server has not acknowledged yet, bounded, in cseq order
// (wire/session/outbox.py).
//
// Each entry is `{op, frame, change, sent, everSent}`: `change` is what applying the op locally
// did (a rollback undoes it). Entries are sent from the front in order, so the outbox is always
// a run of entries sent on the current link (in flight) followed by a run still to send. The
// bound counts both: `maxOps` entries and `maxBytes` bytes of frames; an op that does not fit is
// refused (the caller reports it), never queued past the bound.
//
// Coalescing: the blobs of consecutive batches of one stroke concatenate into a valid blob of
// both (wire/ink.js), so two StrokePoints of one stroke, the second starting where the first
// ends, are one op StrokePoints(cseq of the second, stroke, start of the first, both counts,
// both blobs). That is safe only while the server has seen neither: for the waiting tail at any
// time, and for the whole outbox right after a Welcome (which says exactly which cseqs the
// server has processed). The merged op keeps the later cseq, so cseqs stay increasing.

import { encodeMessage } from '../codec.js';

const SETTLED_KEPT = 256; // acked entries remembered, so that a refusal after its Ack can be rolled back

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export class Outbox {
  constructor({ maxOps, maxBytes, maxPoints, maxFrameBytes }) {
    if (!(Math.min(maxOps, maxBytes, maxPoints, maxFrameBytes) > 0)) throw new RangeError('outbox bounds must be positive');
    this.maxOps = maxOps;
    this.maxBytes = maxBytes;
    this.maxPoints = maxPoints;
    this.maxFrame = maxFrameBytes;
    this._entries = []; // from this._head on
    this._head = 0;
    this._inFlight = 0; // the first _inFlight entries are sent on the current link
    this.bytes = 0;
    this._settled = new Map(); // cseq -> entry, the last few acked
  }

  get size() { return this._entries.length - this._head; }

  /** Entries sent on the current link and not acknowledged. */
  get inFlight() { return this._inFlight; }

  /** Entries not yet sent on the current link. */
  get waiting() { return this.size - this._inFlight; }

  get lastCseq() { return this.size ? this._entries[this._entries.length - 1].op.cseq : 0; }

  entries() { return this._entries.slice(this._head); }

  ops() { return this.entries().map((e) => e.op); }

  /** Whether one more op of `frameBytes` stays within both bounds. */
  fits(frameBytes) {
    return this.size < this.maxOps && this.bytes + frameBytes <= this.maxBytes;
  }

  // --- adding and sending ------------------------------------------------------------------------

  /** Append `entry` ({op, frame, change}; the caller checked `fits`); true if it merged into the waiting tail. */
  push(entry, now = 0) {
    const tail = this.tail;
    // not into an op sent on an earlier link: the server may have it (its Ack lost with the
    // link), and the merged op, resent, would start before the server's count (1015)
    if (this.waiting && entry.op.type === 'StrokePoints' && !tail.everSent) {
      const merged = this._merge(tail, entry);
      if (merged !== null) {
        this.bytes += merged.frame.length - this._entries[this._entries.length - 1].frame.length;
        this._entries[this._entries.length - 1] = merged;
        return true;
      }
    }
    this._entries.push({ ...entry, sent: false, everSent: false, queuedAt: now, sentAt: 0 });
    this.bytes += entry.frame.length;
    return false;
  }

  _merge(first, entry) {
    const a = first.op;
    const op = entry.op;
    if (!(a.type === 'StrokePoints' && a.stroke === op.stroke && op.start === a.start + a.count
      && a.count + op.count <= this.maxPoints && op.cseq > a.cseq)) return null;
    const merged = { type: 'StrokePoints', cseq: op.cseq, stroke: a.stroke, start: a.start, count: a.count + op.count,
      blob: concat(a.blob, op.blob) };
    const frame = encodeMessage(merged);
    if (frame.length > this.maxFrame) return null;
    return { op: merged, frame, change: first.change, sent: false, everSent: first.everSent, queuedAt: first.queuedAt,
      sentAt: 0 };
  }

  /** The first entry not sent on this link, now marked sent; null if all are. */
  nextToSend() {
    if (this._inFlight >= this.size) return null;
    const entry = this._entries[this._head + this._inFlight];
    entry.sent = entry.everSent = true;
    this._inFlight += 1;
    return entry;
  }

  /** The first entry not sent on this link, without sending it. */
  peek() {
    return this._inFlight < this.size ? this._entries[this._head + this._inFlight] : null;
  }

  // --- settling ------------------------------------------------------------------------------------

  /** The newest entry (the one later points of its stroke would merge into), or null. */
  get tail() {
    return this.size ? this._entries[this._entries.length - 1] : null;
  }

  /**
   * Acks are cumulative: drop every entry up to `cseq`; how many went. `ackedSentAt` is then
   * when the last of them that was sent on this link went (0: none was).
   */
  ack(cseq) {
    let dropped = 0;
    this.ackedSentAt = 0;
    while (this.size && this._entries[this._head].op.cseq <= cseq) {
      const entry = this._entries[this._head];
      this._entries[this._head] = undefined;
      this._head += 1;
      this.bytes -= entry.frame.length;
      if (entry.sent) {
        this._inFlight -= 1;
        this.ackedSentAt = entry.sentAt;
      }
      this._settled.set(entry.op.cseq, entry);
      dropped += 1;
    }
    while (this._settled.size > SETTLED_KEPT) this._settled.delete(this._settled.keys().next().value);
    if (this._head > 1024 && this._head * 2 > this._entries.length) {
      this._entries = this._entries.slice(this._head);
      this._head = 0;
    }
    return dropped;
  }

  /** Take out the entry of op `cseq` (refused by the server, or not worth sending): it, held or just acked. */
  discard(cseq) {
    for (let i = this._head; i < this._entries.length; i++) {
      const entry = this._entries[i];
      if (entry.op.cseq !== cseq) continue;
      this._entries.splice(i, 1);
      this.bytes -= entry.frame.length;
      if (entry.sent) this._inFlight -= 1;
      return entry;
    }
    const settled = this._settled.get(cseq);
    this._settled.delete(cseq);
    return settled ?? null;
  }

  /** The link is gone: nothing is in flight on it any more (what the server got, a Welcome tells). */
  linkLost() {
    for (let i = this._head; i < this._entries.length; i++) this._entries[i].sent = false;
    this._inFlight = 0;
  }

  /**
   * The server has processed exactly the cseqs up to `ackedCseq`: drop those, give ops never
   * sent numbers above it if someone else (another tab of this participant) used theirs
   * meanwhile, and coalesce the rest for the resend. Returns the highest cseq held afterwards.
   */
  welcome(ackedCseq) {
    this.linkLost();
    const kept = [];
    for (const e of this.entries()) {
      if (!e.everSent || e.op.cseq > ackedCseq) kept.push(e);
      else this._settled.set(e.op.cseq, e);
    }
    const fresh = kept.filter((e) => !e.everSent);
    if (fresh.length && fresh[0].op.cseq <= ackedCseq) {
      const base = Math.max(ackedCseq, ...kept.filter((e) => e.everSent).map((e) => e.op.cseq));
      fresh.forEach((e, n) => {
        e.op.cseq = base + n + 1;
        e.frame = encodeMessage(e.op);
      });
    }
    const coalesced = [];
    for (const e of kept) {
      const merged = coalesced.length && e.op.type === 'StrokePoints' ? this._merge(coalesced[coalesced.length - 1], e) : null;
      if (merged !== null) {
        merged.everSent = merged.everSent || e.everSent;
        coalesced[coalesced.length - 1] = merged;
      } else coalesced.push(e);
    }
    this._entries = coalesced;
    this._head = 0;
    this.bytes = coalesced.reduce((n, e) => n + e.frame.length, 0);
    return this.lastCseq;
  }
}
