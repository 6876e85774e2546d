// Live audio for the browser: WebRTC to the session server's leg (docs/protocol.md section 12),
// signalled over the session connection.
//
// One RTCPeerConnection with one audio track (the microphone, or receive-only when there is
// none). The offer goes out as RtcOffer, the answer comes back as 'rtc-answer' and carries all the
// server's candidates (it never trickles); ours are trickled as RtcCandidate, filtered first
// (mDNS, TCP and other kinds the server refuses with 1018 would spend the connection's error
// budget). The server drops the leg with the WebSocket, so after every reconnect of the session
// this makes a new RTCPeerConnection and offers again; likewise after 1019 or a failed ICE
// connection (with a backoff). Mute disables the track and sends the Mute op. A speaking
// indicator reads WebAudio AnalyserNodes on the remote stream and the microphone.
//
// ICE servers come from `GET /api/rtc-config` (`{"iceServers": [...]}`, the join token as the
// bearer) when the server has it; otherwise none (enough on a LAN or loopback; behind NAT a TURN
// server is needed).
//
// A participant without the AUDIO right (Welcome.rights) only listens: no track is offered and
// no Mute op is sent.
//
// Voice on any network: when the WebRTC leg has not connected within `relayAfterMs` (UDP blocked
// and no TURN server), or fails, the voice goes over the session WebSocket instead (relay.js:
// WebCodecs Opus both ways), where the browser has WebCodecs. RtcClose tells the server to send
// us the other side's audio on the WebSocket again. From the relay a new WebRTC leg is tried
// now and then (PROBE_MS, and at once when the browser comes back online); once one connects
// the voice moves back to it. `path` is 'webrtc', 'relay' or 'none' (no voice yet).
//
// Events: 'speaking' (detail {local, remote}), 'state' (detail: the RTCPeerConnection's
// connectionState), 'path' (detail: the path), 'mic' (detail {ok, error}: the microphone was
// got or refused), 'error' (detail {message}).

import { VoiceRelay } from './relay.js';
import { Rights } from './wire/roles.js';

const MAX_TRICKLED = 8; // candidates per connection; the server refuses past rtc_max_candidates (32)
const SPEAKING_LEVEL = 0.015; // RMS of the waveform, 0..1
const SPEAKING_HOLD_MS = 400;
const RETRY_MS = [500, 1000, 2000, 5000, 10000];
const RELAY_AFTER_MS = 5000; // a WebRTC leg not connected by then: voice via relay
const PROBE_MS = [30_000, 60_000, 120_000, 300_000]; // from the relay: try WebRTC again after

/** Whether the server can take `candidate` (section 12.5): UDP, host/srflx/relay, component 1, an IP literal. */
export function usableCandidate(candidate) {
  if (!candidate || candidate.length > 512) return false;
  const parts = candidate.replace(/^a=/, '').split(/\s+/);
  if (parts.length < 8 || !parts[0].startsWith('candidate:') || parts[1] !== '1') return false;
  if (parts[2].toLowerCase() !== 'udp' || parts[6] !== 'typ') return false;
  if (!['host', 'srflx', 'relay'].includes(parts[7])) return false;
  const address = parts[4].toLowerCase();
  if (address.endsWith('.local')) return false;
  if (address.includes(':')) return !address.startsWith('fe80:'); // IPv6, not link-local
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(address);
}

function rms(analyser, buffer) {
  analyser.getFloatTimeDomainData(buffer);
  let sum = 0;
  for (let i = 0; i < buffer.length; i++) sum += buffer[i] * buffer[i];
  return Math.sqrt(sum / buffer.length);
}

export class AudioLink extends EventTarget {
  /**
   * `session`: a SessionConnection. Options: `peer` (() => the pid of the party we hear, or null:
   * its Mute silences the speaking indicator), `configUrl` ('/api/rtc-config'), `iceServers`
   * (skips the fetch), `audioElement` (where the other party plays; one is made otherwise),
   * `constraints` (getUserMedia audio constraints).
   */
  constructor(session, { peer = () => null, configUrl = '/api/rtc-config', iceServers = null, audioElement = null,
    constraints = { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    relayAfterMs = RELAY_AFTER_MS, relay = VoiceRelay.supported() } = {}) {
    super();
    this.relayAfterMs = relayAfterMs;
    this.relayAllowed = relay;
    this.path = 'none';
    this.relay = null;
    this._probes = 0;
    this._probeTimer = null;
    this._connectTimer = null;
    this._probing = false;
    this._onOnline = () => { if (this.path === 'relay' && !this._probing) this._probe(); };
    this.session = session;
    this.peer = peer;
    this.configUrl = configUrl;
    this.iceServers = iceServers;
    this.constraints = constraints;
    this.audioElement = audioElement;
    this.pc = null;
    this.localStream = null;
    this.remoteStream = null;
    this.muted = false;
    this.speaking = { local: false, remote: false };
    this.remoteLevel = 0; // the loudest level of the last second (speech and test tones come and go)
    this.localLevel = 0;
    this._levels = [];
    this.negotiations = 0;
    this.micError = null;
    this._started = false;
    this._retries = 0;
    this._retryTimer = null;
    this._ctx = null;
    this._analysers = { local: null, remote: null };
    this._heardAt = { local: -Infinity, remote: -Infinity };
    this._meter = null;
    this._onAnswer = (e) => this._answer(e.detail.sdp);
    this._onWelcome = () => { // the server dropped the leg with the old WebSocket
      if (this.path === 'relay') {
        this._probing = false;
        this._scheduleProbe();
      } else {
        this._negotiate();
      }
    };
    this._onError = (e) => this._sessionError(e.detail);
    this._onSynced = () => { // the room's word on our mute state (with our queued ops applied)
      const muted = session.isMuted(session.pid);
      if (muted !== this.muted) this._applyMute(muted, false);
    };
    this._onMute = (e) => {
      if (e.detail.pid === session.pid && e.detail.muted !== this.muted) this._applyMute(e.detail.muted);
    };
  }

  /** Ask for the microphone and connect. Call from a user gesture where possible (autoplay). */
  async start() {
    if (this._started) return;
    this._started = true;
    if (this.iceServers === null) this.iceServers = await this._fetchIceServers();
    await this._getMicrophone();
    if (!this.audioElement) {
      this.audioElement = document.createElement('audio');
      this.audioElement.hidden = true;
      document.body.appendChild(this.audioElement);
    }
    this.audioElement.autoplay = true;
    this.audioElement.setAttribute('playsinline', '');
    this._ctx = new (window.AudioContext || window.webkitAudioContext)();
    if (this.localStream) this._analysers.local = this._analyse(this.localStream);
    this._meter = setInterval(() => this._measure(), 100);
    this.session.addEventListener('rtc-answer', this._onAnswer);
    this.session.addEventListener('welcome', this._onWelcome);
    this.session.addEventListener('error', this._onError);
    this.session.addEventListener('mute', this._onMute);
    this.session.addEventListener('synced', this._onSynced);
    window.addEventListener('online', this._onOnline);
    this._applyMute(this.session.isMuted(this.session.pid), false);
    if (this.session.state === 'live') await this._negotiate();
  }

  async _getMicrophone() {
    try {
      this.localStream = await navigator.mediaDevices.getUserMedia({ audio: this.constraints, video: false });
      this.micError = null;
      this.dispatchEvent(new CustomEvent('mic', { detail: { ok: true, error: null } }));
    } catch (exc) {
      this.micError = exc; // listen only
      this.dispatchEvent(new CustomEvent('mic', { detail: { ok: false, error: exc } }));
      this._emitError(`no microphone: ${exc && exc.name}`);
    }
  }

  /**
   * Ask for the microphone again (after the user allowed it in the browser); on success the voice
   * starts sending on the path in use. Resolves with whether we have a microphone now.
   */
  async retryMicrophone() {
    if (this.localStream) return true;
    await this._getMicrophone();
    if (!this.localStream) return false;
    if (this._ctx) this._analysers.local = this._analyse(this.localStream);
    this._applyMute(this.muted, false);
    if (this.path === 'relay') {
      this._relaySend();
    } else if (this._started) { // a new leg with the microphone: the old one first, or the offer would renegotiate it
      if (this.pc) this.session.sendSignal({ type: 'RtcClose' });
      await this._negotiate();
    }
    return true;
  }

  /** Hang up and release the microphone. */
  stop() {
    this._started = false;
    clearTimeout(this._retryTimer);
    clearTimeout(this._probeTimer);
    clearTimeout(this._connectTimer);
    window.removeEventListener('online', this._onOnline);
    this.relay?.stop();
    this.relay = null;
    clearInterval(this._meter);
    this.session.removeEventListener('rtc-answer', this._onAnswer);
    this.session.removeEventListener('welcome', this._onWelcome);
    this.session.removeEventListener('error', this._onError);
    this.session.removeEventListener('mute', this._onMute);
    this.session.removeEventListener('synced', this._onSynced);
    if (this.pc) {
      this.session.sendSignal({ type: 'RtcClose' });
      this.pc.close();
      this.pc = null;
    }
    for (const t of this.localStream?.getTracks() ?? []) t.stop();
    this._ctx?.close();
  }

  /** Resume playback after a user gesture (browsers block audio until one). */
  resume() {
    this._ctx?.resume();
    if (this.audioElement?.srcObject) this.audioElement.play().catch(() => {});
  }

  /** Mute or unmute the microphone: the track stops, and the Mute op tells the room (and the server drops our audio). */
  setMuted(muted) {
    this._applyMute(Boolean(muted), true);
  }

  _applyMute(muted, tellRoom = true) {
    this.muted = muted;
    for (const t of this.localStream?.getAudioTracks() ?? []) t.enabled = !muted;
    this.relay?.setMuted(muted);
    if (tellRoom && this.session.may(Rights.AUDIO) && this.session.isMuted(this.session.pid) !== muted) {
      this.session.mute(muted);
    }
    this.dispatchEvent(new CustomEvent('mute', { detail: { muted } }));
  }

  async _fetchIceServers() {
    try {
      // the server gives its TURN credentials to signed-in callers: the join token will do
      const response = await fetch(this.configUrl, {
        credentials: 'same-origin', headers: { Authorization: `Bearer ${this.session.token}` },
      });
      if (!response.ok) return [];
      const config = await response.json();
      return Array.isArray(config.iceServers) ? config.iceServers : [];
    } catch {
      return [];
    }
  }

  _emitError(message) {
    this.dispatchEvent(new CustomEvent('error', { detail: { message } }));
  }

  /** A new RTCPeerConnection and a first offer (the server makes a new leg for it). */
  async _negotiate() {
    if (!this._started || this.session.state !== 'live') return;
    clearTimeout(this._retryTimer);
    clearTimeout(this._connectTimer);
    if (this.pc) {
      this.pc.onicecandidate = this.pc.ontrack = this.pc.onconnectionstatechange = null;
      this.pc.close();
    }
    const pc = new RTCPeerConnection({ iceServers: this.iceServers ?? [] });
    this.pc = pc;
    this.negotiations += 1;
    const trickled = new Set();
    let refusedCandidates = false;
    this._candidatesRefused = () => { refusedCandidates = true; };
    const track = this.session.may(Rights.AUDIO) ? this.localStream?.getAudioTracks()[0] : null;
    if (track) pc.addTrack(track, this.localStream);
    else pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.ontrack = (e) => {
      this.remoteStream = e.streams[0] ?? new MediaStream([e.track]);
      this.audioElement.srcObject = this.remoteStream;
      this.audioElement.play().catch(() => {}); // needs a gesture on some browsers: see resume()
      this._analysers.remote = this._analyse(this.remoteStream);
    };
    pc.onicecandidate = (e) => {
      if (this.pc !== pc || refusedCandidates) return;
      if (e.candidate === null) {
        if (trickled.size) this.session.sendSignal({ type: 'RtcCandidate', candidate: '', sdpMid: '', sdpMlineIndex: 0 });
        return;
      }
      const c = e.candidate;
      if (!usableCandidate(c.candidate) || trickled.size >= MAX_TRICKLED) return;
      const parts = c.candidate.split(/\s+/);
      const key = `${parts[4]} ${parts[5]}`;
      if (trickled.has(key)) return;
      trickled.add(key);
      this.session.sendSignal({ type: 'RtcCandidate', candidate: c.candidate, sdpMid: c.sdpMid ?? '',
        sdpMlineIndex: c.sdpMLineIndex ?? 0 });
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      this.dispatchEvent(new CustomEvent('state', { detail: pc.connectionState }));
      if (pc.connectionState === 'connected') {
        this._retries = 0;
        clearTimeout(this._connectTimer);
        this._onWebrtc();
      }
      if (pc.connectionState === 'failed') this._webrtcFailed();
    };
    // UDP blocked and no TURN: ICE can take half a minute to give up; the voice does not wait
    this._connectTimer = setTimeout(() => {
      if (this.pc === pc && pc.connectionState !== 'connected') this._webrtcFailed();
    }, this.relayAfterMs);
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (this.pc !== pc) return;
      this.session.sendSignal({ type: 'RtcOffer', sdp: pc.localDescription.sdp });
      // not sent (the session dropped meanwhile): the next Welcome negotiates again
    } catch (exc) {
      this._emitError(`offer failed: ${exc}`);
    }
  }

  async _answer(sdp) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== 'have-local-offer') return;
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp });
    } catch (exc) {
      this._emitError(`answer refused: ${exc}`);
      this._retry();
    }
  }

  _sessionError(e) {
    if (e.code === 1017 || e.code === 1018) this._candidatesRefused?.(); // stop spending the error budget
    else if (e.code === 1019) this._webrtcFailed(); // the server dropped the leg
    else if (e.code === 1016) this._emitError(`the server refused our offer: ${e.message}`);
  }

  /** The leg did not connect in time, or failed: the relay (or, without WebCodecs, WebRTC again). */
  _webrtcFailed() {
    if (!this._started) return;
    clearTimeout(this._connectTimer);
    const pc = this.pc;
    if (pc) {
      pc.onicecandidate = pc.ontrack = pc.onconnectionstatechange = null;
      pc.close();
      this.pc = null;
      this.session.sendSignal({ type: 'RtcClose' }); // the other side's voice comes on the WebSocket again
    }
    if (this.path === 'webrtc' && this.relayAllowed && this._ctx) {
      this._retry(); // it worked before: a glitch, most likely; one quick try first
      this._setPath('none');
      return;
    }
    if (this.relayAllowed && this._ctx) this._useRelay();
    else this._retry();
  }

  _onWebrtc() {
    this._probing = false;
    clearTimeout(this._probeTimer);
    this._probes = 0;
    if (this.relay) {
      this.relay.stopSending();
      this.relay.stopReceiving();
    }
    if (this.remoteStream) this._analysers.remote = this._analyse(this.remoteStream);
    this._setPath('webrtc');
  }

  _useRelay() {
    this._probing = false;
    if (!this.relay) {
      this.relay = new VoiceRelay(this.session, this._ctx);
      this.relay.addEventListener('error', (e) => console.warn('tutorwire relay:', e.detail.message));
    }
    this.relay.setMuted(this.muted);
    this.relay.startReceiving();
    this._relaySend();
    this._analysers.remote = { analyser: this.relay.analyser, buffer: new Float32Array(this.relay.analyser.fftSize) };
    this._setPath('relay');
    this._scheduleProbe();
  }

  _relaySend() {
    const track = this.session.may(Rights.AUDIO) ? this.localStream?.getAudioTracks()[0] : null;
    if (this.relay && track) this.relay.startSending(track);
  }

  _scheduleProbe() {
    clearTimeout(this._probeTimer);
    const wait = PROBE_MS[Math.min(this._probes, PROBE_MS.length - 1)];
    this._probeTimer = setTimeout(() => this._probe(), wait);
  }

  /** From the relay, try a WebRTC leg again; the relay keeps sending meanwhile. */
  _probe() {
    if (!this._started || this.path !== 'relay' || this.session.state !== 'live') return;
    this._probes += 1;
    this._probing = true;
    this._negotiate();
  }

  _setPath(path) {
    if (path === this.path) return;
    this.path = path;
    this.dispatchEvent(new CustomEvent('path', { detail: path }));
  }

  _retry() {
    if (!this._started) return;
    clearTimeout(this._retryTimer);
    const wait = RETRY_MS[Math.min(this._retries, RETRY_MS.length - 1)];
    this._retries += 1;
    this._retryTimer = setTimeout(() => this._negotiate(), wait);
  }

  _analyse(stream) {
    if (!this._ctx || stream.getAudioTracks().length === 0) return null;
    const source = this._ctx.createMediaStreamSource(stream);
    const analyser = this._ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser); // not to the destination: the <audio> element plays it
    return { analyser, buffer: new Float32Array(analyser.fftSize) };
  }

  _measure() {
    const now = performance.now();
    const levels = {};
    for (const side of ['local', 'remote']) {
      const a = this._analysers[side];
      levels[side] = a ? rms(a.analyser, a.buffer) : 0;
      if (levels[side] > SPEAKING_LEVEL && !(side === 'local' && this.muted)) this._heardAt[side] = now;
    }
    this._levels.push({ at: now, ...levels });
    while (this._levels.length && now - this._levels[0].at > 1000) this._levels.shift();
    this.localLevel = Math.max(...this._levels.map((l) => l.local));
    this.remoteLevel = Math.max(...this._levels.map((l) => l.remote));
    const speaking = {
      local: now - this._heardAt.local < SPEAKING_HOLD_MS,
      remote: now - this._heardAt.remote < SPEAKING_HOLD_MS && !this.session.isMuted(this.peer()),
    };
    if (speaking.local !== this.speaking.local || speaking.remote !== this.speaking.remote) {
      this.speaking = speaking;
      this.dispatchEvent(new CustomEvent('speaking', { detail: speaking }));
    }
  }

  /**
   * For tests and diagnostics: bytes received and sent on the audio track, the receiver's last
   * `audioLevel`, and `audioLevel`/`localLevel`: the loudest RMS level (0..1) of the last second
   * at the analysers on the other party's audio and on our microphone.
   */
  async stats() {
    const out = { bytesReceived: 0, packetsReceived: 0, bytesSent: 0, inboundAudioLevel: null,
      audioLevel: this.remoteLevel, localLevel: this.localLevel, speaking: { ...this.speaking },
      connectionState: this.pc?.connectionState ?? 'new', negotiations: this.negotiations, muted: this.muted,
      microphone: this.localStream !== null, path: this.path, relay: this.relay ? this.relay.stats() : null,
      packetsLost: 0, rttMs: null };
    if (!this.pc) return out;
    const report = await this.pc.getStats();
    report.forEach((s) => {
      const audio = s.kind === 'audio' || s.mediaType === 'audio';
      if (s.type === 'inbound-rtp' && audio) {
        out.bytesReceived += s.bytesReceived ?? 0;
        out.packetsReceived += s.packetsReceived ?? 0;
        out.packetsLost += Math.max(0, s.packetsLost ?? 0);
        if (typeof s.audioLevel === 'number') out.inboundAudioLevel = s.audioLevel;
      } else if (s.type === 'outbound-rtp' && audio) {
        out.bytesSent += s.bytesSent ?? 0;
      } else if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number') {
        out.rttMs = s.currentRoundTripTime * 1000;
      }
    });
    return out;
  }
}
