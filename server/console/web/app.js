// The console's shell: sign-in, navigation by URL fragment (#/devices,
// #/device/EP, ...), and one page at a time; each page returns a cleanup
// function that stops its event streams.
import { api, setToken, token, APIError } from './api.js';
import { pages } from './pages.js';

const $ = (id) => document.getElementById(id);
let cleanup = () => {};

async function signIn(t) {
  setToken(t);
  try {
    await api('/api/clients?limit=1'); // a token check that costs one record, however large the fleet
  } catch (e) {
    setToken('');
    $('signin-error').textContent = e instanceof APIError && e.status === 401
      ? 'Sign-in failed: the server refused this token.'
      : 'Sign-in failed: ' + e.message;
    showSignIn();
    return false;
  }
  $('signin-error').textContent = '';
  return true;
}

function showSignIn() {
  cleanup(); cleanup = () => {};
  $('signin').hidden = false; $('page').hidden = true; $('nav').hidden = true;
  $('token').focus();
}

async function route() {
  if (!token()) return showSignIn();
  $('signin').hidden = true; $('page').hidden = false; $('nav').hidden = false;
  const [, name = 'devices', ...rest] = (location.hash || '#/devices').split('/');
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === '#/' + name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  cleanup();
  const page = $('page');
  page.replaceChildren();
  const ctl = new AbortController();
  cleanup = () => ctl.abort();
  const render = pages[name] || pages.devices;
  try {
    await render(page, ctl.signal, ...rest.map(decodeURIComponent));
  } catch (e) {
    if (e instanceof APIError && e.status === 401) { setToken(''); $('signin-error').textContent = 'Signed out: the token is no longer accepted.'; return showSignIn(); }
    if (!ctl.signal.aborted) page.append(Object.assign(document.createElement('p'), { className: 'error', role: 'alert', textContent: e.message }));
  }
}

$('signin').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const t = $('token').value.trim();
  $('token').value = '';
  if (await signIn(t)) route();
});
$('signout').addEventListener('click', () => { setToken(''); showSignIn(); });
window.addEventListener('hashchange', route);
route();
