// Drives the collector's web UI in headless Chromium (playwright-core,
// Debian's chromium). Invoked by test_web_ui.py:
//   node browser.mjs CONFIG.json
// CONFIG: {mode: "views"|"heap"|"auth"|"render", base, out (screenshot dir), ...}.
// Prints one JSON object {checks: [{ok, what}], figures: {...}} and exits 0
// (the Python driver judges the checks).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const require = createRequire(path.join(cfg.npm_dir, 'package.json'));
const { chromium } = require('playwright-core');

const checks = [];
const figures = {};
const check = (ok, what) => checks.push({ ok: !!ok, what });
const consoleErrors = [];

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});

async function newPage(ctx, allow = []) {
  const page = await ctx.newPage();
  page.setDefaultTimeout(20000);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (allow.some((a) => text.includes(a))) return;
    consoleErrors.push(page.url() + ': ' + text);
  });
  page.on('pageerror', (e) => consoleErrors.push(page.url() + ': ' + e.message));
  return page;
}

async function ready(page) {
  await page.waitForFunction(() => document.getElementById('main')?.dataset.ready);
}

// Runs "action" (which re-renders the view) and waits for the new render.
async function act(page, action) {
  await page.evaluate(() => { delete document.getElementById('main').dataset.ready; });
  await action();
  await ready(page);
}

async function goto(page, url) {
  await page.evaluate(() => { const m = document.getElementById('main'); if (m) delete m.dataset.ready; }).catch(() => {});
  await page.goto(url);
  await ready(page);
}

const shot = async (page, name) => (await page.waitForTimeout(700), page.screenshot({ path: path.join(cfg.out, name + '.png'), fullPage: true }));

// The flame-graph frame <g> whose label is "name" (in container "sel").
async function frameBox(page, sel, name) {
  return page.evaluate(([sel, name]) => {
    for (const g of document.querySelectorAll(sel + ' g')) {
      const d = g.__data__;
      if (d && d.data && d.data.name === name) {
        const r = g.querySelector('rect');
        if (!r) continue;
        const b = r.getBoundingClientRect();
        return { x: b.x, y: b.y, width: b.width, height: b.height, fill: r.getAttribute('fill') };
      }
    }
    return null;
  }, [sel, name]);
}

async function views() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(ctx);
  // Home.
  await goto(page, cfg.base + '/');
  check(page.url().includes('/ui/'), '/ redirects to /ui/ (' + page.url() + ')');
  const listed = await page.locator(`tr[data-service="${cfg.service}"]`).count();
  check(listed === 1, `home lists ${cfg.service}`);
  await page.waitForSelector(`tr[data-service="${cfg.service}"] .spark canvas`);
  check(true, 'home draws the sparkline');
  await shot(page, 'home');

  // Profile view.
  const q = new URLSearchParams({ service: cfg.service, from: 'now-1h', to: 'now', selector: cfg.selector });
  await goto(page, cfg.base + '/ui/?' + q);
  await page.waitForSelector('#flame svg');
  await page.waitForTimeout(600);  // the flame graph's transition
  for (const [fn, want] of Object.entries(cfg.expected_total_pct)) {
    const box = await frameBox(page, '#flame', fn);
    check(box && box.width > 0, `flame graph shows ${fn}`);
    const cell = await page.locator(`#top tr[data-function="${fn}"] td.total-pct`).first().textContent();
    const got = parseFloat(cell);
    check(Math.abs(got - want) <= 3, `top table: ${fn} total ${got}% vs API ${want.toFixed(2)}% (±3)`);
  }
  await shot(page, 'profile');

  // Label selector completion from the service's label names and values.
  await page.fill('input[name="selector"]', '');
  await page.focus('input[name="selector"]');
  await page.type('input[name="selector"]', '{');
  await page.waitForFunction(() => document.querySelectorAll('datalist#sel-main option').length > 0);
  const options = await page.locator('datalist#sel-main option').evaluateAll((o) => o.map((x) => x.value));
  check(options.includes(cfg.selector) && options.includes(cfg.diff_selector),
    'selector completion offers ' + JSON.stringify(options));
  await page.fill('input[name="selector"]', cfg.selector);

  // Click to zoom: the smaller hot function widens to the full width.
  const [small] = Object.entries(cfg.expected_total_pct).sort((a, b) => a[1] - b[1])[0];
  const before = await frameBox(page, '#flame', small);
  const full = (await page.locator('#flame svg').boundingBox()).width;
  await page.mouse.click(before.x + before.width / 2, before.y + before.height / 2);
  await page.waitForTimeout(800);
  const after = await frameBox(page, '#flame', small);
  check(after && after.width > before.width * 1.5 && after.width > full * 0.9,
    `click zooms ${small}: width ${before.width.toFixed(0)} -> ${after && after.width.toFixed(0)} of ${full.toFixed(0)} px`);
  await shot(page, 'profile-zoomed');
  await page.click('#reset-zoom');
  await page.waitForTimeout(500);

  // Search: highlights and reports the share.
  const [big, bigPct] = Object.entries(cfg.expected_total_pct).sort((a, b) => b[1] - a[1])[0];
  await page.fill('#search', big);
  await page.waitForFunction(() => document.getElementById('search-result').dataset.share);
  const share = parseFloat(await page.getAttribute('#search-result', 'data-share'));
  check(Math.abs(share - bigPct) <= 3, `search "${big}" reports ${share}% (API ${bigPct.toFixed(2)}%, ±3)`);
  const hl = await frameBox(page, '#flame', big);
  check(hl && hl.fill && hl.fill.toLowerCase() === '#e600e6', `search highlights ${big} (fill ${hl && hl.fill})`);
  check(new URL(page.url()).searchParams.get('q') === big, 'search term is in the URL');
  await shot(page, 'profile-search');

  // Top table row -> the function in the flame graph + caller/callee view.
  await act(page, () => page.click(`#top tr[data-function="${small}"] a.fn`));
  await page.waitForSelector('#callers svg');
  const u = new URL(page.url());
  check(u.searchParams.get('fn') === small, 'top row click puts fn in the URL');
  const hl2 = await frameBox(page, '#flame', small);
  check(hl2 && hl2.fill.toLowerCase() === '#e600e6', 'top row click highlights the function in the flame graph');
  check(await frameBox(page, '#callers', small), 'caller view drawn');
  await shot(page, 'profile-sandwich');

  // Sort and filter the top table.
  await act(page, () => page.click('#top th[data-key="function"]'));
  const names = await page.locator('#top tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.function));
  check(names.length > 1 && names.every((n, i) => i === 0 || names[i - 1].localeCompare(n) >= 0),
    'top table sorts by function');
  await page.fill('#top-filter', small);
  const filtered = await page.locator('#top tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.function));
  check(filtered.length >= 1 && filtered.every((n) => n.includes(small)), 'top table filters');

  // Brushing the samples chart narrows the range in the URL.
  const over = await page.locator('#timechart .u-over').boundingBox();
  await page.mouse.move(over.x + over.width * 0.3, over.y + over.height / 2);
  await page.mouse.down();
  await page.mouse.move(over.x + over.width * 0.5, over.y + over.height / 2, { steps: 8 });
  await page.mouse.move(over.x + over.width * 0.7, over.y + over.height / 2, { steps: 8 });
  await act(page, () => page.mouse.up());
  await page.waitForFunction(() => /^\d+$/.test(new URL(location.href).searchParams.get('from') || ''));
  const bu = new URL(page.url());
  const bf = Number(bu.searchParams.get('from')), bt = Number(bu.searchParams.get('to'));
  const now = Date.now() / 1000;
  check(bf > now - 3600 && bt > bf && bt - bf < 3600 * 0.6,
    `brushing sets from/to in the URL (${bf}..${bt}, ${bt - bf} s)`);
  await shot(page, 'profile-brushed');

  // Time presets.
  await act(page, () => page.click('.presets button[data-from="now-15m"]'));
  check(new URL(page.url()).searchParams.get('from') === 'now-15m', 'preset 15m sets from=now-15m');
  await page.fill('input[name="from"]', 'now-2h');
  await page.fill('input[name="to"]', 'now-1s');
  await act(page, () => page.click('form.controls button[type="submit"]'));
  const cu = new URL(page.url()).searchParams;
  check(cu.get('from') === 'now-2h' && cu.get('to') === 'now-1s', 'custom range goes into the URL');
  await page.waitForSelector('#flame svg');

  // Dropped samples note.
  await goto(page, cfg.base + '/ui/?' + new URLSearchParams({ service: cfg.drops_service }));
  const note = await page.locator('#dropped').textContent().catch(() => '');
  check(note.includes(String(cfg.dropped)), `dropped-samples note shows ${cfg.dropped}: "${note.trim()}"`);
  await shot(page, 'profile-dropped');
  await goto(page, cfg.base + '/ui/?' + q);
  check(!(await page.locator('#dropped').count()), 'no dropped-samples note when nothing was lost');

  // Diff view: the function that grew is red, the one that shrank green.
  const dq = new URLSearchParams({ view: 'diff', service: cfg.service, from: 'now-1h', to: 'now',
    selector: cfg.diff_selector, base_selector: cfg.selector });
  await goto(page, cfg.base + '/ui/?' + dq);
  await page.waitForSelector('#flame svg');
  await page.waitForTimeout(600);
  const rgb = (s) => (s.match(/\d+/g) || []).map(Number);
  const grown = await frameBox(page, '#flame', cfg.grown);
  const [r, g, b] = rgb(grown ? grown.fill : '');
  check(grown && r === 255 && g < 200 && b < 200, `diff: ${cfg.grown} (grew) is red (${grown && grown.fill})`);
  const shrunk = await frameBox(page, '#flame', cfg.shrunk);
  const [r2, g2] = rgb(shrunk ? shrunk.fill : '');
  check(shrunk && g2 === 255 && r2 < 200, `diff: ${cfg.shrunk} (shrank) is green (${shrunk && shrunk.fill})`);
  const firstChange = await page.locator('#changes tbody tr').first().getAttribute('data-function');
  check([cfg.grown, cfg.shrunk].includes(firstChange), 'diff table leads with a changed hot function: ' + firstChange);
  await shot(page, 'diff');

  // Exports and speedscope.
  await goto(page, cfg.base + '/ui/?' + q);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('a[data-format="folded"]')]);
  const folded = fs.readFileSync(await download.path(), 'utf8');
  check(folded.includes(big), 'folded export downloads the profile');
  const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#open-speedscope')]);
  popup.on('pageerror', (e) => consoleErrors.push('speedscope: ' + e.message));
  await popup.waitForURL(/speedscope/);
  await popup.waitForSelector('canvas', { timeout: 20000 });
  await popup.waitForTimeout(1000);
  const ssText = await popup.evaluate(() => document.body.innerText);
  check(ssText.includes(cfg.service), 'speedscope opened the profile (title shows the service)');
  await popup.screenshot({ path: path.join(cfg.out, 'speedscope.png') });
  await ctx.close();
}

async function auth() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  // The wrong token's 401 is an expected console line.
  const page = await newPage(ctx, ['status of 401']);
  await page.goto(cfg.base + '/ui/');
  await page.waitForSelector('#token-dialog[open]');
  check(true, 'without a token the UI asks for one');
  const html = await page.content();
  check(!html.includes(cfg.service), 'without a token the page shows no data');
  const status = await page.evaluate(async () => (await fetch('/api/v1/services')).status);
  check(status === 401, 'API without a token: ' + status);
  for (const asset of ['/ui/', '/ui/app.js', '/ui/vendor/d3-flamegraph.min.js', '/speedscope/index.html']) {
    const body = await page.evaluate(async (a) => (await fetch(a)).text(), asset);
    check(!body.includes(cfg.service), `asset ${asset} holds no data`);
  }
  await shot(page, 'auth-prompt');
  await page.fill('#token-input', 'not-the-token');
  await page.click('#token-form button');
  await page.waitForFunction(() => document.getElementById('token-error').textContent.length > 0);
  check(!(await page.content()).includes(`data-service="${cfg.service}"`), 'a wrong token shows no data');
  await page.fill('#token-input', cfg.token);
  await page.click('#token-form button');
  await ready(page);
  check(await page.locator(`tr[data-service="${cfg.service}"]`).count() === 1, 'with the token the home lists the service');
  // Kept for the session: the profile view needs no second prompt.
  const q = new URLSearchParams({ service: cfg.service, from: 'now-1h', to: 'now' });
  await goto(page, cfg.base + '/ui/?' + q);
  await page.waitForSelector('#flame svg');
  check(!(await page.locator('#token-dialog[open]').count()), 'the token is asked once per session');
  await shot(page, 'auth-profile');
  const [popup] = await Promise.all([page.waitForEvent('popup'), page.click('#open-speedscope')]);
  await popup.waitForSelector('canvas', { timeout: 20000 });
  await popup.waitForTimeout(1000);
  check((await popup.evaluate(() => document.body.innerText)).includes(cfg.service),
    'speedscope opens the profile with auth on (blob: URL)');
  check(!popup.url().includes(cfg.token), 'the token is not in speedscope\'s URL');
  await popup.close();
  // A new session asks again.
  const ctx2 = await browser.newContext();
  const page2 = await newPage(ctx2);
  await page2.goto(cfg.base + '/ui/');
  await page2.waitForSelector('#token-dialog[open]');
  check(true, 'a new session asks for the token again');
  await ctx2.close();
  await ctx.close();
}

// Time to draw a profile of cfg.nodes nodes: the page's own render (fetch to
// drawn SVG) and the d3-flame-graph call alone.
async function render() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(ctx);
  const q = new URLSearchParams({ service: cfg.service, from: 'now-1h', to: 'now', max_nodes: String(cfg.max_nodes) });
  const times = [];
  for (let i = 0; i < cfg.repeat; i++) {
    const t0 = Date.now();
    await goto(page, cfg.base + '/ui/?' + q);
    await page.waitForSelector('#flame svg');
    times.push(Date.now() - t0);
  }
  const draw = await page.evaluate(async () => {
    const { render, frameToTree, countNodes } = await import('./flame.js');
    const r = await fetch('/api/v1/profile?' + new URLSearchParams({
      ...Object.fromEntries(new URL(location.href).searchParams), format: 'flamegraph' }));
    const tree = frameToTree(await r.json());
    const el = document.getElementById('flame');
    const out = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      render(el, tree, { transition: 0 });
      await new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res)));
      out.push(performance.now() - t0);
    }
    return { nodes: countNodes(tree), ms: out };
  });
  figures.page_ms = times;
  figures.draw_ms = draw.ms;
  figures.nodes = draw.nodes;
  await shot(page, 'render-' + cfg.nodes);
  await ctx.close();
}

// A heap-profiled service: the type picker lists its types, alloc_space
// shows the fixture's 50/30/20 split in bytes, inuse_space after a choice.
async function heap() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(ctx);
  await goto(page, cfg.base + '/ui/?' + new URLSearchParams({ service: cfg.service, type: 'alloc_space' }));
  await page.waitForSelector('#flame svg');
  const options = await page.locator('#type option').allTextContents();
  for (const t of ['alloc_objects', 'alloc_space', 'inuse_objects', 'inuse_space']) {
    check(options.includes(t), `type picker lists ${t} (${options.join(', ')})`);
  }
  const total = await page.locator('#total').textContent();
  check(/[KMG]iB$/.test(total.trim()), `alloc_space total is in bytes: "${total.trim()}"`);
  for (const [fn, want] of Object.entries(cfg.expected_total_pct)) {
    const box = await frameBox(page, '#flame', fn);
    check(box && box.width > 0, `alloc_space flame graph shows ${fn}`);
    const got = parseFloat(await page.locator(`#top tr[data-function="${fn}"] td.total-pct`).first().textContent());
    check(Math.abs(got - want) <= 5, `alloc_space: ${fn} ${got}% (truth ${want}% ±5)`);
  }
  const tip = await page.evaluate((fn) => {
    for (const g of document.querySelectorAll('#flame g')) {
      if (g.__data__?.data?.name === fn) return g.__data__.value;
    }
    return 0;
  }, Object.keys(cfg.expected_total_pct)[0]);
  check(tip > 1024 * 1024, `the frame's value is bytes (${tip})`);
  await shot(page, 'heap-alloc-space');
  await act(page, () => page.selectOption('#type', 'inuse_space'));
  check(new URL(page.url()).searchParams.get('type') === 'inuse_space', 'choosing inuse_space puts type= in the URL');
  await page.waitForSelector('#flame svg');
  const inuse = await page.locator('#total').textContent();
  check(/[KMG]iB$/.test(inuse.trim()), `inuse_space total in bytes: "${inuse.trim()}"`);
  await shot(page, 'heap-inuse-space');
  await ctx.close();
}

try {
  if (cfg.mode === 'views') await views();
  else if (cfg.mode === 'heap') await heap();
  else if (cfg.mode === 'auth') await auth();
  else if (cfg.mode === 'render') await render();
} catch (e) {
  check(false, 'browser script: ' + (e.stack || e.message));
}
check(consoleErrors.length === 0, 'no console errors: ' + JSON.stringify(consoleErrors.slice(0, 5)));
await browser.close();
console.log(JSON.stringify({ checks, figures }));
