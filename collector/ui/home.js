// Home: every service with its last sample, label names and samples over
// the last hour; each links to its profile view.
import { getJson } from './api.js';
import { series, sparkline } from './chart.js';
import { ago, esc, h } from './format.js';
import { link } from './state.js';

export async function home(main) {
  const services = await getJson('/api/v1/services');
  main.innerHTML = '';
  main.append(h('<h1>Services</h1>'));
  if (!services.length) {
    main.append(h('<p class="muted">No profiles yet. Run a program under <code>stackstream run</code> to send some.</p>'));
    return;
  }
  const table = h(`<table class="services"><thead><tr><th>service</th><th>last seen</th>
    <th>label names</th><th>samples, last hour seen</th></tr></thead><tbody></tbody></table>`);
  main.append(table);
  for (const s of services) {
    const names = [...new Set(s.label_sets.flatMap((l) => Object.keys(l)))].sort();
    const row = h(`<tr data-service="${esc(s.service)}">
      <td><a href="${link({ service: s.service })}">${esc(s.service)}</a></td>
      <td title="${esc(s.last_seen)}">${ago(s.last_seen_unix_nanos)}</td>
      <td>${names.map((n) => `<code>${esc(n)}</code>`).join(' ')}</td>
      <td class="spark"></td></tr>`);
    table.tBodies[0].append(row);
    const end = Math.ceil(s.last_seen_unix_nanos / 1e9) + 60;
    series({ service: s.service, from: String(end - 3600), to: String(end), step: '1m' })
      .then((data) => sparkline(row.querySelector('.spark'), data))
      .catch((e) => { row.querySelector('.spark').textContent = e.message; });
  }
}
