// Profile view: ?service=S&type=&from=&to=&selector= (+ q: flame-graph search,
// fn: the function shown in the caller/callee view, sort/filter: the top
// table, max_nodes: the flame graph's node budget).
import { get, getJson, profileTypes, shareableUrl } from './api.js';
import { series, timeChart } from './chart.js';
import { rangeControls } from './controls.js';
import { countNodes, frameToTree, render, sandwich } from './flame.js';
import { esc, h, pct, valueFormat } from './format.js';
import { link, query, update } from './state.js';

let cache = { key: '', data: null };

async function load(q, maxNodes) {
  const key = JSON.stringify([q, maxNodes]);
  if (cache.key === key) return cache.data;
  const [flameRes, top, points, types] = await Promise.all([
    get('/api/v1/profile', { ...q, format: 'flamegraph', max_nodes: maxNodes }),
    getJson('/api/v1/top', { ...q, limit: 1000000 }),
    series(q),
    profileTypes(q.service).catch(() => []),
  ]);
  const tree = frameToTree(await flameRes.json());
  const dropped = Number(flameRes.headers.get('X-Stackstream-Dropped-Samples') || 0);
  cache = { key, data: { tree, top, points, dropped, types } };
  return cache.data;
}

export async function profile(main, st) {
  const q = query(st);
  const { tree, top, points, dropped, types } = await load(q, st.max_nodes);
  const info = new Map(top.map((r) => [r.function, r]));
  const type = st.type || 'cpu';
  const fmt = valueFormat(type);
  main.innerHTML = '';
  main.append(h(`<h1>${esc(st.service)} <a class="small" href="${link({
    view: 'diff', service: st.service, type: st.type, from: st.from, to: st.to, selector: st.selector,
    base_from: st.from, base_to: st.to, base_selector: st.selector })}">compare…</a></h1>`));
  main.append(typePicker(type, types));
  main.append(rangeControls(st, (r) => update({ ...r, fn: null })));
  if (dropped > 0) {
    main.append(h(`<p class="note" id="dropped">The agents dropped ${dropped} samples in this range:
      the profile is missing them.</p>`));
  }
  main.append(exportsBar(q, st));
  const chartEl = h('<div class="timechart" id="timechart"></div>');
  main.append(chartEl);
  timeChart(chartEl, points, (from, to) => update({ from: String(from), to: String(to) }));

  const total = tree.value;
  if (!total) {
    main.append(h('<p class="muted" id="empty">No samples in this range.</p>'));
    return;
  }
  const bar = h(`<div class="flamebar">
    <input id="search" type="search" placeholder="search functions" value="${esc(st.q || '')}">
    <span id="search-result"></span>
    <button type="button" id="reset-zoom">reset zoom</button>
    <span class="muted">${countNodes(tree) - 1} nodes (max_nodes ${esc(st.max_nodes)}) ·
      total <span id="total">${esc(fmt(total))}</span></span></div>`);
  const flameEl = h('<div id="flame" class="flame"></div>');
  main.append(bar, flameEl);
  const result = bar.querySelector('#search-result');
  const chart = render(flameEl, tree, {
    info,
    format: fmt,
    onSearch: (sum, t, n) => {
      result.textContent = bar.querySelector('#search').value
        ? `matches ${(100 * sum / total).toFixed(2)}% of total (${n} frames)` : '';
      result.dataset.share = (100 * sum / total).toFixed(3);
    },
  });
  const search = (term) => { chart.search(term); if (!term) chart.clear(); };
  bar.querySelector('#search').addEventListener('input', (e) => {
    search(e.target.value);
    update({ q: e.target.value }, { quiet: true });
  });
  bar.querySelector('#reset-zoom').addEventListener('click', () => chart.resetZoom());
  if (st.q) search(st.q);

  if (st.fn) main.append(sandwichView(tree, st.fn, info, fmt));
  main.append(topTable(top, st));
}

function exportsBar(q, st) {
  const el = h(`<div class="exports">export:
    <a href="#" data-format="pprof" download="${esc(st.service)}.pb.gz">pprof</a>
    <a href="#" data-format="folded" download="${esc(st.service)}.folded.txt">folded</a>
    <a href="#" data-format="speedscope" download="${esc(st.service)}.speedscope.json">speedscope</a>
    · <a href="#" id="open-speedscope">open in speedscope</a></div>`);
  for (const a of el.querySelectorAll('a[data-format]')) {
    a.addEventListener('click', async (e) => {
      if (a.dataset.ready) return;
      e.preventDefault();
      a.href = await shareableUrl('/api/v1/profile', { ...q, format: a.dataset.format });
      a.dataset.ready = '1';
      a.click();
    });
  }
  el.querySelector('#open-speedscope').addEventListener('click', async (e) => {
    e.preventDefault();
    const win = window.open('', '_blank');
    const url = new URL(await shareableUrl('/api/v1/profile', { ...q, format: 'speedscope' }), location.href).href;
    const target = '/speedscope/#profileURL=' + encodeURIComponent(url) +
      '&title=' + encodeURIComponent(st.service + ' ' + q.from + ' to ' + q.to);
    if (win) win.location = target; else location.href = target;
  });
  return el;
}

// The profile types the service has (cpu when it has none listed): a
// choice changes type= and keeps the rest of the view.
function typePicker(type, types) {
  const all = [...new Set([...(types.length ? types : ['cpu']), type])];
  const el = h(`<label class="types">profile type <select id="type">${all.map((t) =>
    `<option value="${esc(t)}"${t === type ? ' selected' : ''}>${esc(t)}</option>`).join('')}</select></label>`);
  el.querySelector('select').addEventListener('change', (e) =>
    update({ type: e.target.value === 'cpu' ? null : e.target.value, fn: null }));
  return el;
}

function sandwichView(tree, fn, info, fmt) {
  const { callers, callees } = sandwich(tree, fn);
  const el = h(`<section class="sandwich" id="sandwich"><h2>${esc(fn)}
    <button type="button" id="close-sandwich">close</button></h2>
    <p class="muted">total ${fmt(callers.value)} (${pct(100 * callers.value / tree.value)}) ·
      self ${fmt(callers.self)}</p>
    <h3>callers</h3><div class="flame" id="callers"></div>
    <h3>callees</h3><div class="flame" id="callees"></div></section>`);
  el.querySelector('#close-sandwich').addEventListener('click', () => update({ fn: null }));
  requestAnimationFrame(() => {
    render(el.querySelector('#callers'), callers, { info, inverted: true, transition: 0, format: fmt });
    render(el.querySelector('#callees'), callees, { info, transition: 0, format: fmt });
  });
  return el;
}

const COLUMNS = [['self', 'self'], ['self_pct', 'self %'], ['total', 'total'], ['total_pct', 'total %'],
  ['function', 'function'], ['module', 'module']];

function topTable(rows, st) {
  const sort = st.sort || 'self';
  const desc = !(st.sort_dir === 'asc');
  const el = h(`<section><h2>Top functions</h2>
    <input id="top-filter" type="search" placeholder="filter" value="${esc(st.filter || '')}">
    <table class="top" id="top"><thead><tr>${COLUMNS.map(([k, n]) =>
      `<th data-key="${k}" class="${k === sort ? (desc ? 'desc' : 'asc') : ''}">${n}</th>`).join('')}</tr></thead>
    <tbody></tbody></table></section>`);
  const body = el.querySelector('tbody');
  const fill = () => {
    const f = el.querySelector('#top-filter').value.toLowerCase();
    const shown = rows.filter((r) => !f || r.function.toLowerCase().includes(f) || r.module.toLowerCase().includes(f));
    const key = sort === 'self_pct' ? 'self' : sort === 'total_pct' ? 'total' : sort;
    shown.sort((a, b) => {
      const c = typeof a[key] === 'string' ? a[key].localeCompare(b[key]) : a[key] - b[key];
      return desc ? -c : c;
    });
    body.innerHTML = shown.slice(0, 500).map((r) => `<tr data-function="${esc(r.function)}">
      <td>${r.self}</td><td class="self-pct">${r.self_pct.toFixed(2)}</td><td>${r.total}</td>
      <td class="total-pct">${r.total_pct.toFixed(2)}</td>
      <td><a href="#" class="fn">${esc(r.function)}</a></td><td class="module">${esc(r.module)}</td></tr>`).join('');
  };
  fill();
  el.querySelector('#top-filter').addEventListener('input', (e) => {
    fill();
    update({ filter: e.target.value }, { quiet: true });
  });
  for (const th of el.querySelectorAll('th')) {
    th.addEventListener('click', () => update({
      sort: th.dataset.key, sort_dir: th.dataset.key === sort && desc ? 'asc' : null,
    }, { replace: true }));
  }
  body.addEventListener('click', (e) => {
    const a = e.target.closest('a.fn');
    if (!a) return;
    e.preventDefault();
    const fn = a.closest('tr').dataset.function;
    update({ fn, q: fn });
  });
  return el;
}
