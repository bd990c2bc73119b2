// Calls to the collector's /api/v1: every call carries the session's token
// when the collector requires one (asked once, kept in sessionStorage).
const TOKEN_KEY = 'stackstream.token';
let tokenRequired = null;

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }

function askToken(message) {
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  document.getElementById('token-error').textContent = message || '';
  input.value = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      resolve();
    }, { once: true });
    dialog.showModal();
  });
}

// Before the first call: ask for the token if the collector needs one.
async function ready() {
  if (tokenRequired === null) {
    const r = await fetch('/ui/auth');
    tokenRequired = r.ok ? (await r.json()).token_required : false;
  }
  if (tokenRequired && !token()) await askToken();
}

function headers() {
  return tokenRequired && token() ? { Authorization: 'Bearer ' + token() } : {};
}

// GET path?params; returns the Response (status 2xx) or throws ApiError.
export async function get(path, params = {}) {
  await ready();
  const url = path + '?' + new URLSearchParams(params);
  for (;;) {
    const r = await fetch(url, { headers: headers() });
    if (r.status === 401 && tokenRequired) {
      await askToken('That token was not accepted.');
      continue;
    }
    if (!r.ok) {
      let msg = r.statusText;
      try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new ApiError(r.status, path + ': ' + msg);
    }
    return r;
  }
}

export async function getJson(path, params) { return (await get(path, params)).json(); }

// POST a JSON body (the Connect API under /querier.v1...); the reply's JSON.
export async function postJson(path, body) {
  await ready();
  for (;;) {
    const r = await fetch(path, { method: 'POST', body: JSON.stringify(body),
      headers: { ...headers(), 'Content-Type': 'application/json' } });
    if (r.status === 401 && tokenRequired) {
      await askToken('That token was not accepted.');
      continue;
    }
    if (!r.ok) throw new ApiError(r.status, path + ': ' + r.statusText);
    return r.json();
  }
}

// The profile types a service has data for in the last 30 days, as the
// API's type= names (cpu, wall, alloc_objects, ...), from the Pyroscope
// API's Series call (the same one Grafana makes).
export async function profileTypes(service) {
  const end = Date.now();
  const reply = await postJson('/querier.v1.QuerierService/Series', {
    start: end - 30 * 86400e3, end,
    matchers: [`{service_name=${JSON.stringify(service)}}`], labelNames: ['__profile_type__'] });
  const types = new Set();
  for (const set of reply.labelsSet || reply.labels_set || []) {
    for (const l of set.labels || []) {
      if (l.name !== '__profile_type__') continue;
      const sampleType = l.value.split(':')[1];
      types.add(sampleType === 'samples' ? 'cpu' : sampleType);
    }
  }
  return [...types];
}

// A URL for the data that a page outside this one (a download, speedscope)
// can load: the API URL itself when no token is needed, else a blob: URL of
// the data fetched with the token (the token never goes into a URL).
export async function shareableUrl(path, params) {
  await ready();
  if (!tokenRequired) return path + '?' + new URLSearchParams(params);
  const blob = await (await get(path, params)).blob();
  return URL.createObjectURL(blob);
}
