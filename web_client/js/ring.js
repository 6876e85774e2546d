// Calls that ring: when an offer comes, the tutor's page plays a ring (WebAudio tones: nothing
// to fetch), flashes the tab title and shows a browser notification, until the offer is
// answered, withdrawn or seen. The notification permission is asked when the tutor makes
// themselves available (a click: the moment they opt in to being called), never on load; the
// AudioContext is made on that click too, so the ring may sound later without a gesture.
//
//   const ring = new Ring({ title: () => t('ring.title') });
//   ring.arm();                        // from a click: permission + audio
//   ring.start({title, body, tag});    // an offer came
//   ring.stop();                       // answered, withdrawn, or gone
//
// window.tw.ring (set by the page) exposes rings, notifications (what was shown) and flashing.

const FLASH_MS = 1000;
const RING_EVERY_MS = 3000;
const RING_FOR_MS = 60_000; // longer than an offer's lease (45 s): it stops when the offer goes

export class Ring {
  constructor({ title = () => 'New request!' } = {}) {
    this.flashTitle = title;
    this.ctx = null;
    this.rings = 0;
    this.notifications = [];
    this.flashing = false;
    this.armed = false; // the tutor pressed "Available" (the permission was asked then)
    this.permission = typeof Notification === 'function' ? Notification.permission : 'unsupported';
    this._baseTitle = document.title;
    this._flashTimer = null;
    this._ringTimer = null;
    this._ringUntil = 0;
    this._shown = null;
    this._onVisible = () => { if (document.visibilityState === 'visible') this._stopFlashOnly(); };
  }

  /** Call from a user gesture: make the AudioContext, and ask for the notification permission. */
  async arm() {
    this.armed = true;
    try {
      if (!this.ctx) this.ctx = new (window.AudioContext || window.webkitAudioContext)();
      await this.ctx.resume();
    } catch {
      this.ctx = null; // no sound; the title and the notification still work
    }
    if (typeof Notification === 'function' && Notification.permission === 'default') {
      try { this.permission = await Notification.requestPermission(); } catch { /* old browsers: callback form only */ }
    } else if (typeof Notification === 'function') {
      this.permission = Notification.permission;
    }
    return this.permission;
  }

  start({ title, body = '', tag = 'offer' }) {
    this.stop();
    this._baseTitle = document.title;
    this.flashing = true;
    let on = false;
    const flash = () => {
      on = !on;
      document.title = on ? `🔔 ${this.flashTitle()}` : this._baseTitle;
    };
    flash();
    this._flashTimer = setInterval(flash, FLASH_MS);
    this._ringUntil = performance.now() + RING_FOR_MS;
    this._tone();
    this._ringTimer = setInterval(() => {
      if (performance.now() > this._ringUntil) clearInterval(this._ringTimer);
      else this._tone();
    }, RING_EVERY_MS);
    if (typeof Notification === 'function' && Notification.permission === 'granted') {
      try {
        const n = new Notification(title, { body, tag, requireInteraction: true, renotify: true });
        n.onclick = () => { window.focus(); n.close(); };
        this._shown = n;
        this.notifications.push({ title, body, tag });
      } catch {
        // some browsers allow notifications from a service worker only: the title and ring remain
      }
    }
    document.addEventListener('visibilitychange', this._onVisible);
  }

  stop() {
    this._stopFlashOnly();
    clearInterval(this._ringTimer);
    this._ringTimer = null;
    try { this._shown?.close(); } catch { /* gone */ }
    this._shown = null;
    document.removeEventListener('visibilitychange', this._onVisible);
  }

  _stopFlashOnly() {
    if (this._flashTimer !== null) {
      clearInterval(this._flashTimer);
      this._flashTimer = null;
      document.title = this._baseTitle;
    }
    this.flashing = false;
  }

  /** Two short rising tones, like a phone. */
  _tone() {
    const ctx = this.ctx;
    if (!ctx || ctx.state !== 'running') return;
    const t0 = ctx.currentTime + 0.02;
    for (const [i, freq] of [880, 1175].entries()) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0, t0 + i * 0.22);
      gain.gain.linearRampToValueAtTime(0.25, t0 + i * 0.22 + 0.02);
      gain.gain.linearRampToValueAtTime(0, t0 + i * 0.22 + 0.2);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t0 + i * 0.22);
      osc.stop(t0 + i * 0.22 + 0.21);
    }
    this.rings += 1;
  }
}
