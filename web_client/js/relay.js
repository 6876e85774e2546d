// Voice via relay: Opus over the session WebSocket, for when WebRTC cannot connect (UDP blocked
// and no TURN server, as behind many school firewalls). docs/protocol.md section 11: the
// microphone goes out as `Audio` frames, the other side's voice comes in as `AudioRelay` frames
// (the server forwards them as they are; it never transcodes).
//
// Sending: MediaStreamTrackProcessor hands the microphone's AudioData to a WebCodecs
// AudioEncoder (Opus, 20 ms frames, mono, 24 kbit/s); each packet becomes one Audio frame.
// Receiving: one AudioDecoder per speaker; its PCM is scheduled on the page's AudioContext
// behind a small jitter allowance (JITTER_S) and played through an AnalyserNode (the level the
// view and the tests read). Packets that come after their turn are dropped; a long gap starts
// the play-out afresh.
//
// `VoiceRelay.supported()` says whether this browser can do it (WebCodecs with Opus).

const FRAME_US = 20_000;
const BITRATE = 24_000;
const JITTER_S = 0.08; // play-out delay behind the first packet of a talk spurt
const MAX_AHEAD_S = 0.4; // scheduled further ahead than this: the packet is dropped (we fell behind)

function seqAfter(a, b) { // a comes after b, modulo 2^32 (and RTP's 2^16 once a stream wraps)
  const d = (a - b) >>> 0;
  return d !== 0 && d < 0x80000000;
}

export class VoiceRelay extends EventTarget {
  /** `session`: a SessionConnection; `ctx`: the page's AudioContext (the voice plays on it). */
  constructor(session, ctx) {
    super();
    this.session = session;
    this.ctx = ctx;
    this.output = ctx.createGain();
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 1024;
    this.output.connect(this.analyser);
    this.analyser.connect(ctx.destination);
    this.sending = false;
    this.receiving = false;
    this.muted = false;
    this.packetsSent = 0;
    this.packetsReceived = 0;
    this.packetsLost = 0;
    this.packetsLate = 0;
    this.bytesReceived = 0;
    this._seq = Math.floor(Math.random() * 0x10000);
    this._encoder = null;
    this._reader = null;
    this._speakers = new Map(); // pid -> {decoder, lastSeq, playhead}
    this._onAudio = (e) => this._received(e.detail);
  }

  static supported() {
    return typeof AudioEncoder === 'function' && typeof AudioDecoder === 'function'
      && typeof MediaStreamTrackProcessor === 'function' && typeof EncodedAudioChunk === 'function';
  }

  // --- sending -----------------------------------------------------------------------------------

  /** Encode `track` (a microphone MediaStreamTrack) and send it until stopSending(). */
  async startSending(track) {
    if (this.sending || !track) return;
    this.sending = true;
    const processor = new MediaStreamTrackProcessor({ track: track.clone() });
    const reader = processor.readable.getReader();
    this._reader = reader;
    let configured = null;
    try {
      for (;;) {
        const { value: frame, done } = await reader.read();
        if (done || !this.sending) {
          frame?.close();
          break;
        }
        if (configured === null) configured = this._encoderFor(frame);
        if (this.muted || this._encoder === null) { // the server drops a muted sender's audio: save the bytes
          frame.close();
          continue;
        }
        this._encoder.encode(frame);
        frame.close();
      }
    } catch (exc) {
      this._emitError(`relay microphone: ${exc}`);
    } finally {
      this._closeEncoder();
    }
  }

  _encoderFor(frame) {
    const encoder = new AudioEncoder({
      output: (chunk) => {
        const payload = new Uint8Array(chunk.byteLength);
        chunk.copyTo(payload);
        if (this.session.sendAudio(this._seq, payload)) this.packetsSent += 1;
        this._seq = (this._seq + 1) >>> 0;
      },
      error: (exc) => this._emitError(`relay encoder: ${exc}`),
    });
    encoder.configure({ codec: 'opus', sampleRate: frame.sampleRate, numberOfChannels: 1, bitrate: BITRATE,
      opus: { frameDuration: FRAME_US } });
    this._encoder = encoder;
    return encoder;
  }

  _closeEncoder() {
    const encoder = this._encoder;
    this._encoder = null;
    try { if (encoder && encoder.state !== 'closed') encoder.close(); } catch { /* closed already */ }
  }

  stopSending() {
    this.sending = false;
    this._reader?.cancel().catch(() => {});
    this._reader = null;
    this._closeEncoder();
  }

  setMuted(muted) { this.muted = Boolean(muted); }

  // --- receiving ---------------------------------------------------------------------------------

  startReceiving() {
    if (this.receiving) return;
    this.receiving = true;
    this.session.addEventListener('audio', this._onAudio);
  }

  stopReceiving() {
    this.receiving = false;
    this.session.removeEventListener('audio', this._onAudio);
    for (const s of this._speakers.values()) {
      try { s.decoder.close(); } catch { /* closed already */ }
    }
    this._speakers.clear();
  }

  _speaker(pid) {
    let s = this._speakers.get(pid);
    if (s) return s;
    s = { decoder: null, lastSeq: null, playhead: 0 };
    s.decoder = new AudioDecoder({
      output: (data) => this._play(s, data),
      error: (exc) => { this._emitError(`relay decoder: ${exc}`); this._speakers.delete(pid); },
    });
    s.decoder.configure({ codec: 'opus', sampleRate: 48_000, numberOfChannels: 1 });
    this._speakers.set(pid, s);
    return s;
  }

  _received(relay) {
    if (!this.receiving || relay.pid === this.session.pid) return;
    const s = this._speaker(relay.pid);
    if (s.lastSeq !== null && !seqAfter(relay.seq, s.lastSeq)) { // after its turn
      this.packetsLate += 1;
      return;
    }
    if (s.lastSeq !== null) {
      const gap = ((relay.seq - s.lastSeq) >>> 0) - 1;
      if (gap > 0 && gap < 1000) this.packetsLost += gap;
    }
    s.lastSeq = relay.seq;
    this.packetsReceived += 1;
    this.bytesReceived += relay.payload.length;
    try {
      s.decoder.decode(new EncodedAudioChunk({ type: 'key', timestamp: relay.sessionMs * 1000, data: relay.payload }));
    } catch (exc) {
      this._emitError(`relay decode: ${exc}`);
    }
  }

  _play(s, data) {
    const ctx = this.ctx;
    const frames = data.numberOfFrames;
    const buffer = ctx.createBuffer(1, frames, data.sampleRate);
    const pcm = new Float32Array(frames);
    data.copyTo(pcm, { planeIndex: 0, format: 'f32-planar' });
    data.close();
    buffer.copyToChannel(pcm, 0);
    const now = ctx.currentTime;
    if (s.playhead < now) s.playhead = now + JITTER_S; // a new talk spurt, or a gap: start afresh
    if (s.playhead - now > MAX_AHEAD_S) { // far behind: drop, and let the play-out catch up
      this.packetsLate += 1;
      return;
    }
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(this.output);
    source.start(s.playhead);
    s.playhead += buffer.duration;
  }

  stop() {
    this.stopSending();
    this.stopReceiving();
    try { this.analyser.disconnect(); this.output.disconnect(); } catch { /* gone already */ }
  }

  stats() {
    return { packetsSent: this.packetsSent, packetsReceived: this.packetsReceived, packetsLost: this.packetsLost,
      packetsLate: this.packetsLate, bytesReceived: this.bytesReceived, sending: this.sending, receiving: this.receiving };
  }

  _emitError(message) {
    this.dispatchEvent(new CustomEvent('error', { detail: { message } }));
  }
}
