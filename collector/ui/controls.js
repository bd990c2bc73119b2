// The query controls shared by the profile and diff views: time presets, a
// custom range, and a label selector with completion from the service's
// label names and values.
import { getJson } from './api.js';
import { esc, h } from './format.js';

export const PRESETS = [['5m', 'now-5m'], ['15m', 'now-15m'], ['1h', 'now-1h'], ['6h', 'now-6h'],
  ['24h', 'now-24h'], ['7d', 'now-7d']];

let labelCache = null;
async function labelSets(service) {
  if (!labelCache) labelCache = getJson('/api/v1/services');
  const s = (await labelCache).find((x) => x.service === service);
  return s ? s.label_sets : [];
}

// Suggestions for a selector being typed: the text so far plus a next
// matcher name="value" (values the service has for that name).
function suggest(text, sets) {
  const pairs = new Set();
  for (const set of sets) for (const [k, v] of Object.entries(set)) pairs.add(`${k}="${v.replace(/"/g, '\\"')}"`);
  let head = text.trim().replace(/}$/, '');
  if (!head.startsWith('{')) head = '{' + head;
  const cut = Math.max(head.lastIndexOf(','), head.lastIndexOf('{'));
  const prefix = head.slice(0, cut + 1);
  const done = new Set(prefix.slice(1).split(',').map((m) => m.split(/[=!~]/)[0].trim()).filter(Boolean));
  return [...pairs].filter((p) => !done.has(p.split('=')[0])).map((p) => prefix + p + '}');
}

// Returns an element; onApply({from, to, selector}) on submit.
export function rangeControls(st, onApply, { prefix = '', label = '' } = {}) {
  const from = st[prefix + 'from'] || st.from;
  const to = st[prefix + 'to'] || st.to;
  const sel = st[prefix + 'selector'] !== undefined ? st[prefix + 'selector'] : (st.selector || '');
  const id = 'sel-' + (prefix || 'main');
  const el = h(`<form class="controls" data-range="${prefix || 'main'}">
    ${label ? `<strong>${esc(label)}</strong>` : ''}
    <span class="presets">${PRESETS.map(([n, v]) =>
      `<button type="button" data-from="${v}" class="${from === v && to === 'now' ? 'on' : ''}">${n}</button>`).join('')}</span>
    <label>from <input name="from" size="20" value="${esc(from)}"></label>
    <label>to <input name="to" size="20" value="${esc(to)}"></label>
    <label>selector <input name="selector" size="36" list="${id}" autocomplete="off"
      placeholder='{env="prod"}' value="${esc(sel)}"></label>
    <datalist id="${id}"></datalist>
    <button type="submit">Apply</button></form>`);
  const apply = () => onApply({
    from: el.from.value.trim() || 'now-1h', to: el.to.value.trim() || 'now', selector: el.selector.value.trim(),
  });
  el.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  for (const b of el.querySelectorAll('.presets button')) {
    b.addEventListener('click', () => { el.from.value = b.dataset.from; el.to.value = 'now'; apply(); });
  }
  const list = el.querySelector('datalist');
  const refresh = async () => {
    const options = suggest(el.selector.value, await labelSets(st.service));
    list.innerHTML = options.slice(0, 50).map((o) => `<option value="${esc(o)}">`).join('');
  };
  el.selector.addEventListener('focus', refresh);
  el.selector.addEventListener('input', refresh);
  return el;
}
