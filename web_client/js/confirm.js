// One question before a destructive action (clear a page, leave, end the session): a modal
// <dialog id="confirm"> with the question, what it does, and two buttons (#confirm-ok,
// #confirm-cancel). Escape, the backdrop and Cancel all answer no. The dialog is made once per
// document and reused.
//
//   if (await confirmAction({title, body, ok, cancel, danger: true})) { ... }

let dialog = null;
let pending = null; // the resolve of the question showing

function build() {
  const d = document.createElement('dialog');
  d.id = 'confirm';
  d.className = 'tw-confirm';
  d.setAttribute('aria-labelledby', 'confirm-title');
  d.setAttribute('aria-describedby', 'confirm-body');
  const title = document.createElement('h2');
  title.id = 'confirm-title';
  const body = document.createElement('p');
  body.id = 'confirm-body';
  const actions = document.createElement('div');
  actions.className = 'tw-confirm-actions';
  const cancel = document.createElement('button');
  cancel.type = 'button';
  cancel.id = 'confirm-cancel';
  const ok = document.createElement('button');
  ok.type = 'button';
  ok.id = 'confirm-ok';
  actions.append(cancel, ok);
  d.append(title, body, actions);
  const answer = (yes) => {
    const resolve = pending;
    pending = null;
    if (d.open) d.close();
    resolve?.(yes);
  };
  ok.addEventListener('click', () => answer(true));
  cancel.addEventListener('click', () => answer(false));
  d.addEventListener('cancel', (e) => { e.preventDefault(); answer(false); }); // Escape
  d.addEventListener('click', (e) => { if (e.target === d) answer(false); }); // the backdrop
  document.body.append(d);
  return d;
}

/** Ask once; resolves true for the action, false for no. A second question answers the first no. */
export function confirmAction({ title, body = '', ok, cancel, danger = true }) {
  if (!dialog || !dialog.isConnected) dialog = build();
  if (pending) pending(false);
  dialog.querySelector('#confirm-title').textContent = title;
  const text = dialog.querySelector('#confirm-body');
  text.textContent = body;
  text.hidden = !body;
  const okButton = dialog.querySelector('#confirm-ok');
  okButton.textContent = ok;
  okButton.className = danger ? 'danger' : 'primary';
  dialog.querySelector('#confirm-cancel').textContent = cancel;
  return new Promise((resolve) => {
    pending = resolve;
    dialog.showModal();
    dialog.querySelector('#confirm-cancel').focus(); // the safe answer has the focus
  });
}
