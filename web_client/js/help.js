// The first-run guide: four short steps for a student or a tutor, shown once on the first visit
// of this browser (remembered in localStorage), skippable at any step, and shown again from the
// header's help button (#help-open).
//
//   mountGuide('student', t);
//
// Markup: <dialog id="guide"> with #guide-step ("Step 1 of 4"), #guide-title, #guide-body and
// the buttons #guide-back, #guide-next (the last step's says "Got it") and #guide-skip.

import { el } from './dom.js';

const STEPS = 4;

export function mountGuide(role, t, { header = document.querySelector('header.bar') } = {}) {
  const key = `tutorwire.guide.${role}`;
  let step = 1;
  const title = el('h2', { id: 'guide-title' });
  const counter = el('p', { id: 'guide-step', class: 'hint' });
  const body = el('p', { id: 'guide-body' });
  const back = el('button', { type: 'button', id: 'guide-back' });
  const next = el('button', { type: 'button', id: 'guide-next', class: 'primary' });
  const skip = el('button', { type: 'button', id: 'guide-skip' });
  const dialog = el('dialog', { id: 'guide', class: 'tw-confirm guide', 'aria-labelledby': 'guide-title',
    'aria-describedby': 'guide-body' }, [counter, title, body, el('div', { class: 'tw-confirm-actions' }, [skip, back, next])]);
  document.body.append(dialog);
  const open = el('button', { type: 'button', id: 'help-open', class: 'help-open' });
  header?.querySelector('label')?.before(open);

  function render() {
    open.textContent = t('help.open');
    counter.textContent = t('help.step', { n: step, total: STEPS });
    title.textContent = t(`help.${role}.${step}.title`);
    body.textContent = t(`help.${role}.${step}.body`);
    back.textContent = t('help.back');
    back.hidden = step === 1;
    next.textContent = t(step === STEPS ? 'help.done' : 'help.next');
    skip.textContent = t('help.skip');
    skip.hidden = step === STEPS;
  }

  function show(from = 1) {
    step = from;
    render();
    if (!dialog.open) dialog.showModal();
    next.focus();
  }

  function finish() {
    try { localStorage.setItem(key, 'seen'); } catch { /* private mode: shown again next time */ }
    if (dialog.open) dialog.close();
    open.focus();
  }

  next.addEventListener('click', () => {
    if (step === STEPS) finish();
    else { step += 1; render(); }
  });
  back.addEventListener('click', () => { step = Math.max(1, step - 1); render(); });
  skip.addEventListener('click', finish);
  dialog.addEventListener('cancel', (e) => { e.preventDefault(); finish(); });
  open.addEventListener('click', () => show(1));
  window.addEventListener('tw:langchange', render);
  render();
  let seen = false;
  try { seen = localStorage.getItem(key) === 'seen'; } catch { seen = false; }
  if (!seen) show(1);
  return { show, finish };
}
