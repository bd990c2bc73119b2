// The view's state lives in the URL (?view=&service=&type=&from=&to=&selector=
// &fn=&q=&max_nodes=...), so any view can be shared as a link.
export const DEFAULTS = { from: 'now-1h', to: 'now', max_nodes: '2048' };

export function state() {
  const p = new URLSearchParams(location.search);
  const s = { ...DEFAULTS };
  for (const [k, v] of p) s[k] = v;
  return s;
}

let onChange = () => {};
export function listen(fn) {
  onChange = fn;
  window.addEventListener('popstate', () => onChange());
}

// Changes some keys (null deletes) and re-renders; pushes a history entry.
// quiet: only the URL changes (the view already shows the change).
export function update(changes, { replace = false, quiet = false } = {}) {
  const p = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === '') p.delete(k); else p.set(k, v);
  }
  const url = location.pathname + '?' + p.toString();
  if (replace || quiet) history.replaceState(null, '', url); else history.pushState(null, '', url);
  if (!quiet) onChange();
}

export function link(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) p.set(k, v);
  return './?' + p.toString();
}

// The profile query parameters of state "s" (prefix "base_" for a diff's base).
export function query(s, prefix = '') {
  const q = { service: s.service, from: s[prefix + 'from'] || s.from, to: s[prefix + 'to'] || s.to };
  const sel = s[prefix + 'selector'] !== undefined ? s[prefix + 'selector'] : s.selector;
  if (sel) q.selector = sel;
  if (s.type) q.type = s.type;  // cpu (default), wall, alloc_*/inuse_* (heap)
  return q;
}
