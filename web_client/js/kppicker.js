// Knowledge points in the user's language: the request form's picker over the matcher's
// catalogue (GET /api/catalogue/{subject}: volumes > chapters > points, each with zh-CN and
// English names; docs/matcher.md). The student searches (every word typed must occur in the
// Chinese or English name, as the server's own search) or opens the chapters of their grade,
// and taps to add; chosen points show as chips with a remove button. Ids never reach the screen.
//
//   const picker = new KnowledgePicker(root, { subject: () => 'math', grade: () => 8, lang: () => 'zh-CN', t });
//   picker.value();          // the chosen ids
//   picker.set(['math.algebra.linear-equations']);
//
// Markup made inside `root`: input#kp-search, ul#kp-results (button.kp-option[data-kp]),
// ul#kp-chosen (li[data-kp] with button.kp-remove), div#kp-tree (<details> per volume and chapter).

import { apiGet } from './api.js';
import { el } from './dom.js';

export const MAX_POINTS = 8;
const MAX_RESULTS = 12;
const trees = new Map(); // subject -> Promise of {tree, nodes: Map id -> node}

/** The catalogue of `subject`, fetched once per page. */
export function catalogueOf(subject) {
  if (!trees.has(subject)) {
    const subjects = apiGet('/api/catalogue').catch(() => ({ subjects: [] })); // for the strands' names
    const p = Promise.all([apiGet(`/api/catalogue/${encodeURIComponent(subject)}`), subjects]).then(([tree, all]) => {
      const nodes = new Map();
      const walk = (n) => {
        nodes.set(n.id, n);
        for (const c of n.children ?? []) walk(c);
      };
      walk(tree);
      for (const s of all.subjects ?? []) for (const strand of s.strands ?? []) if (!nodes.has(strand.id)) nodes.set(strand.id, strand);
      return { tree, nodes };
    });
    p.catch(() => trees.delete(subject)); // a failure is not remembered
    trees.set(subject, p);
  }
  return trees.get(subject);
}

/** The name of a node in `lang` (zh-CN or en). */
export function nodeName(node, lang) {
  return (lang === 'zh-CN' ? node.zh : node.en) || node.zh || node.en || '';
}

/** Names for ids of a request (the tutor's view): the catalogue's, or a readable fallback. */
export async function namesFor(subject, ids, lang) {
  let nodes = null;
  try { nodes = (await catalogueOf(subject)).nodes; } catch { nodes = null; }
  return ids.map((id) => {
    const n = nodes?.get(id);
    if (n) return nodeName(n, lang);
    const last = String(id).split('.').pop() || String(id);
    return last.replace(/[-_]+/g, ' '); // an id the catalogue does not know: at least no dots
  });
}

/** Every word of `query` in the node's names (case-insensitive), as the server's search. */
export function matches(node, query) {
  const hay = `${node.zh ?? ''} ${node.en ?? ''}`.toLowerCase();
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  return words.length > 0 && words.every((w) => hay.includes(w));
}

export class KnowledgePicker extends EventTarget {
  constructor(root, { subject, grade, lang, t, describedBy = '' }) {
    super();
    this.root = root;
    this.subject = subject;
    this.grade = grade;
    this.lang = lang;
    this.t = t;
    this.chosen = []; // ids, in the order chosen
    this.catalogue = null;
    this.loading = null;
    this.search = el('input', { id: 'kp-search', type: 'search', autocomplete: 'off', enterkeyhint: 'search',
      'aria-describedby': `kp-search-hint ${describedBy}`.trim(), 'aria-controls': 'kp-results' });
    this.hint = el('p', { id: 'kp-search-hint', class: 'hint' });
    this.results = el('ul', { id: 'kp-results', class: 'kp-results', 'aria-live': 'polite' });
    this.chosenLabel = el('p', { class: 'hint kp-chosen-label' });
    this.chosenList = el('ul', { id: 'kp-chosen', class: 'chips kp-chosen' });
    this.treeLabel = el('p', { class: 'hint' });
    this.tree = el('div', { id: 'kp-tree', class: 'kp-tree' });
    this.status = el('p', { id: 'kp-status', class: 'hint', role: 'status' });
    root.replaceChildren(this.search, this.hint, this.results, this.chosenLabel, this.chosenList, this.status,
      this.treeLabel, this.tree);
    this.search.addEventListener('input', () => this.renderResults());
    this.search.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter') return;
      e.preventDefault(); // Enter in the search adds the first match, never sends the form
      const first = this.results.querySelector('button.kp-option');
      if (first) first.click();
    });
    this.reload();
    // loaded from the cache while offline: fetch the catalogue when the network is back
    window.addEventListener('online', () => { if (!this.catalogue) this.reload(); });
  }

  value() { return [...this.chosen]; }

  set(ids) {
    this.chosen = [...new Set(ids)].slice(0, MAX_POINTS);
    this.render();
    this._changed();
  }

  add(id) {
    if (this.chosen.includes(id)) return;
    if (this.chosen.length >= MAX_POINTS) {
      this.status.textContent = this.t('kp.max', { n: MAX_POINTS });
      return;
    }
    this.chosen.push(id);
    this.render();
    this._changed();
  }

  remove(id) {
    this.chosen = this.chosen.filter((x) => x !== id);
    this.render();
    this._changed();
  }

  _changed() { this.dispatchEvent(new CustomEvent('change', { detail: this.value() })); }

  /** The subject changed (or the page loaded): fetch its catalogue; points of another subject go. */
  async reload() {
    const subject = this.subject();
    this.catalogue = null;
    this.status.textContent = this.t('kp.loading');
    const loading = catalogueOf(subject);
    this.loading = loading;
    try {
      const c = await loading;
      if (this.loading !== loading) return;
      this.catalogue = c;
      this.status.textContent = '';
      this.chosen = this.chosen.filter((id) => c.nodes.has(id));
    } catch {
      if (this.loading !== loading) return;
      this.status.textContent = this.t('kp.unavailable');
    }
    this.render();
  }

  name(id) {
    const n = this.catalogue?.nodes.get(id);
    return n ? nodeName(n, this.lang()) : id.split('.').pop().replace(/[-_]+/g, ' ');
  }

  render() {
    this.search.setAttribute('aria-label', this.t('kp.search'));
    this.search.placeholder = this.t('kp.search');
    this.hint.textContent = this.t('kp.searchHint');
    this.chosenLabel.textContent = `${this.t('kp.chosen')}:`;
    this.treeLabel.textContent = `${this.t('kp.chapters')}:`;
    this.chosenList.replaceChildren(...(this.chosen.length ? this.chosen.map((id) => {
      const remove = el('button', { type: 'button', class: 'kp-remove', 'aria-label': this.t('kp.remove', { name: this.name(id) }) },
        ['×']);
      remove.addEventListener('click', () => this.remove(id));
      return el('li', { dataset: { kp: id } }, [el('span', {}, [this.name(id)]), remove]);
    }) : [el('li', { class: 'empty' }, [this.t('kp.none')])]));
    this.renderResults();
    this.renderTree();
  }

  _option(node) {
    const chosen = this.chosen.includes(node.id);
    const b = el('button', { type: 'button', class: 'kp-option', dataset: { kp: node.id, kind: node.kind },
      'aria-pressed': String(chosen) }, [nodeName(node, this.lang())]);
    b.setAttribute('aria-label', this.t(chosen ? 'kp.remove' : 'kp.add', { name: nodeName(node, this.lang()) }));
    b.addEventListener('click', () => {
      if (this.chosen.includes(node.id)) this.remove(node.id);
      else this.add(node.id);
      this.search.focus();
    });
    return b;
  }

  renderResults() {
    const q = this.search.value.trim();
    if (!q || !this.catalogue) {
      this.results.replaceChildren();
      return;
    }
    const grade = this.grade();
    const found = [];
    for (const n of this.catalogue.nodes.values()) {
      if ((n.kind === 'point' || n.kind === 'chapter') && matches(n, q)) found.push(n);
    }
    // the student's grade first, then textbook order
    found.sort((a, b) => Number(b.grade === grade) - Number(a.grade === grade));
    this.results.replaceChildren(...(found.length ? found.slice(0, MAX_RESULTS).map((n) => el('li', {}, [this._option(n)]))
      : [el('li', { class: 'empty' }, [this.t('kp.noMatch')])]));
  }

  renderTree() {
    if (!this.catalogue) {
      this.tree.replaceChildren();
      return;
    }
    const grade = this.grade();
    const volumes = (this.catalogue.tree.children ?? []).filter((v) => v.kind === 'volume'
      && (grade === null || v.grade === grade));
    const open = new Set([...this.tree.querySelectorAll('details[open]')].map((d) => d.dataset.id));
    this.tree.replaceChildren(...volumes.map((v) => {
      const chapters = (v.children ?? []).map((c) => {
        const points = el('ul', { class: 'chips' }, (c.children ?? []).map((p) => el('li', {}, [this._option(p)])));
        const d = el('details', { dataset: { id: c.id } }, [el('summary', {}, [nodeName(c, this.lang())]), points]);
        if (open.has(c.id)) d.open = true;
        return d;
      });
      const d = el('details', { dataset: { id: v.id }, class: 'kp-volume' }, [el('summary', {}, [nodeName(v, this.lang())]), ...chapters]);
      if (open.has(v.id) || volumes.length === 1) d.open = true;
      return d;
    }));
  }
}
