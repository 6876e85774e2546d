// The microphone check before a session: a level meter that moves when the microphone hears
// the user, a plain status (works / nothing heard yet / blocked, with the steps / no microphone),
// "Try again", and a speaker test (a short tone, then "did you hear it?").
//
//   mountMicCheck(button, panel, t)   // the button opens and closes the panel
//
// Markup made in `panel`: #mic-meter (data-level 0..1), #mic-status (data-state: heard | silent |
// blocked | missing), #mic-check-retry, #speaker-test, #speaker-yes / #speaker-no, #speaker-status
// (data-state: ok | bad), #mic-check-done. The microphone is released when the panel closes.

import { el } from './dom.js';

const HEARD_LEVEL = 0.02; // RMS 0..1
const TONE_HZ = 660;
const TONE_S = 0.6;

export function mountMicCheck(button, panel, t) {
  let stream = null;
  let ctx = null;
  let timer = null;
  let heard = false;
  let peak = 0;
  let lastError = null;

  const meter = el('meter', { id: 'mic-meter', min: '0', max: '1', low: '0.02', high: '0.3', optimum: '0.2', value: '0',
    'data-level': '0' });
  const meterLabel = el('label', { for: 'mic-meter' });
  const hint = el('p', { class: 'hint' });
  const status = el('p', { id: 'mic-status', role: 'status', 'aria-live': 'polite', 'data-state': '' });
  const retry = el('button', { type: 'button', id: 'mic-check-retry', hidden: '' });
  const speaker = el('button', { type: 'button', id: 'speaker-test' });
  const ask = el('p', { id: 'speaker-ask', hidden: '' });
  const yes = el('button', { type: 'button', id: 'speaker-yes' });
  const no = el('button', { type: 'button', id: 'speaker-no' });
  const askRow = el('div', { class: 'actions', hidden: '' }, [yes, no]);
  const speakerStatus = el('p', { id: 'speaker-status', role: 'status', 'data-state': '' });
  const done = el('button', { type: 'button', id: 'mic-check-done' });
  panel.replaceChildren(hint, meterLabel, meter, status, el('div', { class: 'actions' }, [retry]),
    el('div', { class: 'actions' }, [speaker]), ask, askRow, speakerStatus, el('div', { class: 'actions' }, [done]));
  panel.classList.add('mic-check');

  function render() {
    button.textContent = t('mic.check');
    hint.textContent = t('mic.checkHint');
    meterLabel.textContent = t('mic.level');
    retry.textContent = t('mic.retry');
    speaker.textContent = t('mic.speaker');
    ask.textContent = t('mic.speakerAsk');
    yes.textContent = t('mic.speakerYes');
    no.textContent = t('mic.speakerNo');
    done.textContent = t('mic.done');
    const state = status.dataset.state;
    status.textContent = state ? t({ heard: 'mic.heard', silent: 'mic.silent', blocked: 'mic.blocked',
      missing: 'mic.missing' }[state]) : '';
    status.className = state === 'heard' ? 'note good' : state ? 'note bad' : '';
    retry.hidden = !(state === 'blocked' || state === 'missing');
    const s = speakerStatus.dataset.state;
    speakerStatus.textContent = s === 'ok' ? t('mic.speakerOk') : s === 'bad' ? t('mic.speakerBad') : '';
  }

  function setState(state) {
    status.dataset.state = state;
    render();
  }

  async function start() {
    stop(false);
    heard = false;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch (exc) {
      lastError = exc;
      setState(exc && (exc.name === 'NotFoundError' || exc.name === 'OverconstrainedError') ? 'missing' : 'blocked');
      return;
    }
    ctx = ctx ?? new (window.AudioContext || window.webkitAudioContext)();
    await ctx.resume().catch(() => {});
    const source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const buffer = new Float32Array(analyser.fftSize);
    setState('silent');
    timer = setInterval(() => {
      analyser.getFloatTimeDomainData(buffer);
      let sum = 0;
      for (const v of buffer) sum += v * v;
      const level = Math.sqrt(sum / buffer.length);
      peak = Math.max(level, peak * 0.9);
      meter.value = Math.min(1, peak * 3);
      meter.dataset.level = peak.toFixed(3);
      if (!heard && level > HEARD_LEVEL) {
        heard = true;
        setState('heard');
      }
    }, 80);
  }

  function stop(close = true) {
    clearInterval(timer);
    timer = null;
    for (const track of stream?.getTracks() ?? []) track.stop();
    stream = null;
    if (close && ctx) {
      ctx.close().catch(() => {});
      ctx = null;
    }
  }

  async function playTone() {
    ctx = ctx ?? new (window.AudioContext || window.webkitAudioContext)();
    await ctx.resume().catch(() => {});
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = TONE_HZ;
    const t0 = ctx.currentTime + 0.02;
    gain.gain.setValueAtTime(0, t0);
    gain.gain.linearRampToValueAtTime(0.3, t0 + 0.03);
    gain.gain.setValueAtTime(0.3, t0 + TONE_S - 0.05);
    gain.gain.linearRampToValueAtTime(0, t0 + TONE_S);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t0);
    osc.stop(t0 + TONE_S);
    ask.hidden = false;
    askRow.hidden = false;
    speakerStatus.dataset.state = '';
    render();
  }

  button.addEventListener('click', () => {
    const open = panel.hidden;
    panel.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (open) start();
    else stop();
  });
  retry.addEventListener('click', () => start());
  speaker.addEventListener('click', () => playTone());
  yes.addEventListener('click', () => { speakerStatus.dataset.state = 'ok'; askRow.hidden = true; ask.hidden = true; render(); });
  no.addEventListener('click', () => { speakerStatus.dataset.state = 'bad'; render(); });
  done.addEventListener('click', () => {
    panel.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    stop();
    button.focus();
  });
  window.addEventListener('tw:langchange', render);
  button.setAttribute('aria-controls', panel.id);
  button.setAttribute('aria-expanded', 'false');
  panel.hidden = true;
  render();
  return { start, stop, get error() { return lastError; } };
}
