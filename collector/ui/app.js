// The collector's web UI: home (services), profile view, diff view. All
// state is in the URL (state.js); every API call goes through api.js.
import { diff } from './diff.js';
import { esc, h } from './format.js';
import { home } from './home.js';
import { profile } from './profile.js';
import { link, listen, state } from './state.js';

const main = document.getElementById('main');

async function route() {
  const st = state();
  const nav = document.getElementById('nav');
  nav.innerHTML = `<a href="./">services</a>` + (st.service
    ? ` › <a href="${link({ service: st.service, from: st.from, to: st.to, selector: st.selector })}">${esc(st.service)}</a>`
    : '');
  document.title = st.service ? `${st.service} · stackstream` : 'stackstream';
  try {
    if (!st.service) await home(main);
    else if (st.view === 'diff') await diff(main, st);
    else await profile(main, st);
    main.dataset.ready = String(Date.now());
  } catch (e) {
    main.innerHTML = '';
    main.append(h(`<p class="error" id="error">${esc(e.message)}</p>`));
    main.dataset.ready = String(Date.now());
  }
}

listen(route);
route();
