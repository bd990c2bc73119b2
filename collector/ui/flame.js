// Flame graphs with d3-flame-graph: the collector's flame-graph frame
// (format=flamegraph: level, value, self, label in depth-first order) turned
// into the nested tree d3-flame-graph draws; the caller/callee trees of one
// function; the differential tree of two profiles.
import { duration, esc } from './format.js';

// Grafana data-frame JSON -> {name, value, self, children}.
export function frameToTree(frame) {
  const [level, value, self, label] = frame.data.values;
  const root = { name: label[0] || 'total', value: value[0] || 0, self: self[0] || 0, children: [] };
  const stack = [root];
  for (let i = 1; i < level.length; i++) {
    const node = { name: label[i], value: value[i], self: self[i], children: [] };
    stack.length = level[i];
    stack[level[i] - 1].children.push(node);
    stack.push(node);
  }
  return root;
}

export function countNodes(t) {
  let n = 0;
  const st = [t];
  while (st.length) { const x = st.pop(); n++; for (const c of x.children) st.push(c); }
  return n;
}

function child(parent, name) {
  let c = parent.children.find((x) => x.name === name);
  if (!c) { c = { name, value: 0, self: 0, children: [] }; parent.children.push(c); }
  return c;
}

function addTree(dst, src, scale = 1) {
  dst.value += src.value * scale;
  dst.self += src.self * scale;
  for (const c of src.children) addTree(child(dst, c.name), c, scale);
}

// Callers (paths from the root down to "fn", leaf first) and callees (the
// subtrees under "fn") merged over every place "fn" appears. Recursion:
// only the outermost occurrence on a path counts.
export function sandwich(tree, fn) {
  const callers = { name: fn, value: 0, self: 0, children: [] };
  const callees = { name: fn, value: 0, self: 0, children: [] };
  const walk = (node, path) => {
    if (node.name === fn) {
      callers.value += node.value;
      callers.self += node.self;
      let at = callers;
      for (let i = path.length - 1; i >= 1; i--) { at = child(at, path[i]); at.value += node.value; }
      callees.value += node.value;
      callees.self += node.self;
      for (const c of node.children) addTree(child(callees, c.name), c);
      return;
    }
    path.push(node.name);
    for (const c of node.children) walk(c, path);
    path.pop();
  };
  walk(tree, []);
  return { callers, callees };
}

// Target tree with each node's "delta": its self change between the two
// profiles, both normalised to the target's total (so a grown share is
// positive whatever the two totals are). Nodes only in the base keep their
// scaled base value so they stay visible.
export function diffTree(base, target) {
  const scale = base.value > 0 ? target.value / base.value : 0;
  const merge = (b, t, name) => {
    const node = { name, value: t ? t.value : 0, self: t ? t.self : 0, children: [] };
    const bs = b ? b.self * scale : 0;
    node.delta = node.self - bs;
    node.base = b ? b.value * scale : 0;
    if (!t) node.value = node.base;
    const names = new Set([...(t ? t.children : []), ...(b ? b.children : [])].map((c) => c.name));
    for (const n of names) {
      const tc = t && t.children.find((c) => c.name === n);
      const bc = b && b.children.find((c) => c.name === n);
      node.children.push(merge(bc, tc, n));
    }
    node.children.sort((x, y) => y.value - x.value);
    return node;
  };
  return merge(base, target, target.name || 'total');
}

// red: a larger share than in the base (slower), green: smaller (faster);
// the stronger the colour, the larger the change relative to the node.
export function diffColor(d) {
  if (d.highlight) return '#e600e6';
  const delta = d.delta || 0;
  const total = Math.max(d.value, Math.abs(delta), 1);
  const k = Math.min(1, Math.abs(delta) / total);
  const fade = Math.round(225 * (1 - k));
  if (Math.abs(delta) < total * 0.01) return 'rgb(225,225,225)';
  return delta > 0 ? `rgb(255,${fade},${fade})` : `rgb(${fade},255,${fade})`;
}

// Draws "tree" into "el" and returns the d3-flame-graph chart.
// opts: info (function -> top row), onClick(d), onSearch(sum, total), inverted, color, diff,
// format (value -> text, default: nanoseconds as a duration)
export function render(el, tree, opts = {}) {
  el.innerHTML = '';
  const width = Math.max(300, el.clientWidth || 960);
  const rootTotal = tree.value || 1;
  const tip = flamegraph.tooltip.defaultFlamegraphTooltip().html((d) => tooltip(d, rootTotal, opts));
  const chart = flamegraph()
    .width(width)
    .cellHeight(18)
    .minFrameSize(1)
    .transitionDuration(0)  // the first draw; zooms animate (below)
    .inverted(!!opts.inverted)
    .sort(false)
    .tooltip(tip)
    .setSearchMatch((d, term) => !!term && (d.data.name || '').toLowerCase().includes(term.toLowerCase()))
    .setSearchHandler((results, sum, total) => opts.onSearch && opts.onSearch(sum, total, results.length))
    .onClick((d) => opts.onClick && opts.onClick(d));
  if (opts.diff) chart.computeDelta(true).setColorMapper((d) => diffColor(d));
  d3.select(el).datum(tree).call(chart);
  chart.transitionDuration(opts.transition ?? 250);
  return chart;
}

function tooltip(d, rootTotal, opts) {
  const data = d.data;
  const fmt = opts.format || duration;
  const info = (opts.info && opts.info.get(data.name)) || {};
  const where = info.file ? esc(info.file) + (info.line ? ':' + info.line : '') : '';
  let html = `<b>${esc(data.name)}</b><br>` +
    `total ${fmt(d.value)} (${(100 * d.value / rootTotal).toFixed(2)}%)<br>` +
    `self ${fmt(data.self || 0)} (${(100 * (data.self || 0) / rootTotal).toFixed(2)}%)`;
  if (opts.diff) html += `<br>change of self ${d.delta > 0 ? '+' : ''}${(100 * (d.delta || 0) / rootTotal).toFixed(2)} points`;
  if (info.module) html += `<br>module ${esc(info.module)}`;
  if (where) html += `<br>${where}`;
  return html;
}
