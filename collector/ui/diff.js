// Diff view: ?view=diff&service=S&from=&to=&selector= (the target) and
// base_from=&base_to=&base_selector= (the base): two time ranges or two
// selectors. The flame graph is the target's, coloured by each function's
// change of share (red: larger share than in the base, green: smaller), and
// the table lists the largest changes (/api/v1/diff).
import { get, getJson } from './api.js';
import { rangeControls } from './controls.js';
import { diffTree, frameToTree, render } from './flame.js';
import { esc, h } from './format.js';
import { link, query, update } from './state.js';

export async function diff(main, st) {
  const target = query(st);
  const base = query(st, 'base_');
  const flame = async (q) => frameToTree(await (await get('/api/v1/profile',
    { ...q, format: 'flamegraph', max_nodes: st.max_nodes })).json());
  const diffParams = { ...target, base_from: base.from, base_to: base.to, limit: 200 };
  diffParams.base_selector = base.selector || '{}';
  const [bt, tt, d] = await Promise.all([flame(base), flame(target), getJson('/api/v1/diff', diffParams)]);
  main.innerHTML = '';
  main.append(h(`<h1>${esc(st.service)}: diff <a class="small" href="${link(
    { service: st.service, type: st.type, from: st.from, to: st.to, selector: st.selector })}">profile</a></h1>`));
  main.append(rangeControls(st, (r) => update({ base_from: r.from, base_to: r.to, base_selector: r.selector }),
    { prefix: 'base_', label: 'base' }));
  main.append(rangeControls(st, (r) => update(r), { label: 'target' }));
  main.append(h(`<p class="muted">base ${d.base.total} samples · target ${d.target.total} samples ·
    <span class="legend up">larger share (slower)</span> <span class="legend down">smaller share (faster)</span></p>`));
  const el = h('<div id="flame" class="flame"></div>');
  main.append(el);
  if (!bt.value || !tt.value) {
    el.replaceWith(h(`<p class="muted" id="empty">${!bt.value ? 'The base' : 'The target'} has no samples.</p>`));
  } else {
    render(el, diffTree(bt, tt), { diff: true });
  }
  const rows = [...d.rows].sort((a, b) => Math.abs(b.delta_total_pct) - Math.abs(a.delta_total_pct));
  const table = h(`<section><h2>Largest changes</h2><table class="changes" id="changes"><thead><tr>
    <th>function</th><th>module</th><th>base total %</th><th>total %</th><th>change (points)</th>
    <th>base self %</th><th>self %</th></tr></thead><tbody>${rows.slice(0, 100).map((r) => `
    <tr data-function="${esc(r.function)}" class="${r.delta_total_pct > 0 ? 'up' : r.delta_total_pct < 0 ? 'down' : ''}">
      <td>${esc(r.function)}</td><td class="module">${esc(r.module)}</td>
      <td>${r.base_total_pct.toFixed(2)}</td><td>${r.total_pct.toFixed(2)}</td>
      <td class="delta">${r.delta_total_pct > 0 ? '+' : ''}${r.delta_total_pct.toFixed(2)}</td>
      <td>${r.base_self_pct.toFixed(2)}</td><td>${r.self_pct.toFixed(2)}</td></tr>`).join('')}</tbody></table></section>`);
  main.append(table);
}
