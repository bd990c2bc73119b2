// Number, time and HTML formatting shared by the views.
export function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

// Nanoseconds of CPU (or wall) time as "1.23 s", "45.6 ms", ...
export function duration(ns) {
  const a = Math.abs(ns);
  if (a >= 3600e9) return (ns / 3600e9).toFixed(2) + ' h';
  if (a >= 60e9) return (ns / 60e9).toFixed(2) + ' min';
  if (a >= 1e9) return (ns / 1e9).toFixed(2) + ' s';
  if (a >= 1e6) return (ns / 1e6).toFixed(1) + ' ms';
  if (a >= 1e3) return (ns / 1e3).toFixed(1) + ' µs';
  return ns + ' ns';
}

// Bytes as "1.5 MiB", ...
export function bytes(n) {
  const a = Math.abs(n);
  if (a >= 2 ** 30) return (n / 2 ** 30).toFixed(2) + ' GiB';
  if (a >= 2 ** 20) return (n / 2 ** 20).toFixed(1) + ' MiB';
  if (a >= 2 ** 10) return (n / 2 ** 10).toFixed(1) + ' KiB';
  return n + ' B';
}

// The formatter of a profile type's values: time for cpu/wall, bytes for
// alloc_space/inuse_space, a count for alloc_objects/inuse_objects.
export function valueFormat(type) {
  if (/_space$/.test(type || '')) return bytes;
  if (/_objects$/.test(type || '')) return (n) => n.toLocaleString('en-US') + ' objects';
  return duration;
}

export function pct(x) { return x.toFixed(2) + '%'; }

export function ago(unixNanos) {
  const s = Math.max(0, Date.now() / 1000 - unixNanos / 1e9);
  if (s < 90) return Math.round(s) + ' s ago';
  if (s < 5400) return Math.round(s / 60) + ' min ago';
  if (s < 129600) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}

export function h(html) {
  const t = document.createElement('template');
  t.innerHTML = html.trim();
  return t.content.firstElementChild;
}
