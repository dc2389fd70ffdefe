// The console's pages. Everything shown is built with textContent, never
// innerHTML: endpoint names and resource values come from devices.
import { api, stream, upload } from './api.js';

// h builds an element: h('td', {className: 'x'}, 'text', child, ...).
function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && k !== 'list') el[k] = v;
    else el.setAttribute(k, v);
  }
  el.append(...kids.flat().filter((k) => k != null).map((k) => typeof k === 'object' ? k : String(k)));
  return el;
}
const table = (heads, rows) => h('div', { className: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows)));
const when = (t) => t ? new Date(t).toLocaleString() : '—';
const field = (label, input) => h('label', {}, label, input);
const status = () => h('p', { role: 'status', className: 'muted' });

let objectsCache;
async function objectModels() {
  if (!objectsCache) {
    const r = await fetch('/console/objects.json');
    objectsCache = new Map((await r.json()).map((o) => [o.id, o]));
  }
  return objectsCache;
}

// valueOf is the value a read or notification answered, as text.
function valueOf(res) {
  if (!res) return '';
  if (res.entries && res.entries.length === 1) return String(res.entries[0].value);
  if (res.entries) return res.entries.map((e) => `${e.path}=${e.value}`).join(', ');
  return res.content ?? res.payload ?? res.status ?? '';
}

// versions remembers firmware versions read on device pages (/3/0/3), so
// the device list can show them without asking every device.
const versions = new Map();

// The device list is paged by the server (GET /api/clients?limit=&after=,
// from the store's endpoint index): a fleet of 100,000 is never loaded
// into the page. Filters and search go to the server; the event stream
// updates the rows shown and reloads the page when a registration falls
// into it.
const PAGE = 50;

async function devices(page, signal) {
  const search = h('input', { id: 'filter', type: 'search', placeholder: 'part of an endpoint name', autocomplete: 'off' });
  const sec = h('select', { id: 'f-security' }, [['', 'any'], ['none', 'none'], ['psk', 'PSK'], ['x509', 'X.509']].map(([v, t]) => h('option', { value: v }, t)));
  const queue = h('select', { id: 'f-queue' }, [['', 'any'], ['true', 'yes'], ['false', 'no']].map(([v, t]) => h('option', { value: v }, t)));
  const prev = h('button', { type: 'button', id: 'prev', disabled: true }, '← Previous');
  const next = h('button', { type: 'button', id: 'next', disabled: true }, 'Next →');
  const body = h('tbody');
  const count = status();
  count.setAttribute('aria-live', 'polite');
  page.append(h('h1', {}, 'Devices'),
    h('form', { className: 'row', role: 'search', onsubmit: (ev) => ev.preventDefault() }, field('Search endpoints', search), field('Security', sec), field('Queue mode', queue)),
    count, h('div', { className: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ['Endpoint', 'State', 'Firmware', 'Last seen', 'Queue mode', 'Security'].map((t) => h('th', { scope: 'col' }, t)))), body)),
    h('div', { className: 'row pager' }, prev, next));
  const cursors = ['']; // cursors[i] is the ?after= of page i
  let at = 0, rows = new Map(), nextCursor = '', registered = 0;
  const query = () => {
    const q = new URLSearchParams({ limit: PAGE, after: cursors[at] });
    if (search.value.trim()) q.set('q', search.value.trim());
    if (sec.value) q.set('security', sec.value);
    if (queue.value) q.set('queue', queue.value);
    return q;
  };
  const matches = (c) => {
    const s = search.value.trim().toLowerCase();
    return (!s || c.endpoint.toLowerCase().includes(s)) && (!sec.value || c.security === sec.value) &&
      (!queue.value || String(!!c.queueMode) === queue.value);
  };
  const draw = () => {
    const first = at * PAGE;
    count.textContent = rows.size ? `Devices ${first + 1}–${first + rows.size} · ${registered.toLocaleString()} registered` : `No device matches · ${registered.toLocaleString()} registered`;
    prev.disabled = at === 0; next.disabled = !nextCursor;
    body.replaceChildren(...[...rows.values()].map((c) => h('tr', {},
      h('td', {}, h('a', { href: '#/device/' + encodeURIComponent(c.endpoint) }, c.endpoint)),
      h('td', { className: c.state === 'registered' ? 'ok' : 'muted' }, c.state),
      h('td', {}, versions.get(c.endpoint) || '—'), h('td', {}, when(c.lastUpdate)),
      h('td', {}, c.queueMode ? 'yes' : 'no'), h('td', {}, c.security || 'none'))));
  };
  let seq = 0;
  const load = async () => {
    const mine = ++seq;
    const p = await api('/api/clients?' + query(), { signal });
    if (mine !== seq) return; // a newer load (typing) wins
    rows = new Map(p.clients.map((c) => [c.endpoint, { ...c, state: 'registered' }]));
    nextCursor = p.next; registered = p.registered;
    draw();
  };
  let typing;
  const refilter = () => { clearTimeout(typing); typing = setTimeout(() => { cursors.length = 1; at = 0; load().catch(() => {}); }, 250); };
  search.addEventListener('input', refilter);
  sec.addEventListener('change', refilter);
  queue.addEventListener('change', refilter);
  next.addEventListener('click', () => { if (!nextCursor) return; cursors[at + 1] = nextCursor; at++; load().catch(() => {}); });
  prev.addEventListener('click', () => { if (at > 0) { at--; load().catch(() => {}); } });
  await load();
  // A registration elsewhere in the fleet changes only the count; one
  // that falls into this page reloads it, at most once a second.
  let reloading = false;
  const reload = () => {
    if (reloading) return;
    reloading = true; setTimeout(() => { reloading = false; load().catch(() => {}); }, 1000);
  };
  const inPage = (ep) => ep > cursors[at] && (!nextCursor || ep <= nextCursor);
  stream('/api/event', (type, e) => {
    const shown = rows.get(e.endpoint);
    if (type === 'REGISTRATION' || type === 'UPDATED') {
      const reg = (e.data && (e.data.registration || e.data)) || {};
      const c = { ...shown, ...reg, endpoint: e.endpoint, state: 'registered', lastUpdate: e.time };
      if (shown) { rows.set(e.endpoint, c); draw(); }
      if (type === 'REGISTRATION') {
        if (!shown) registered++;
        if (!shown && inPage(e.endpoint) && matches(c)) reload(); else draw();
      }
    } else if (type === 'DEREGISTRATION') {
      registered = Math.max(0, registered - 1);
      if (shown) shown.state = 'deregistered';
      draw();
    }
  }, signal).catch(() => {});
}

async function device(page, signal, ep) {
  const c = await api('/api/clients/' + encodeURIComponent(ep), { signal });
  const models = await objectModels();
  page.append(h('h1', {}, ep), h('p', { className: 'muted' },
    `registered ${when(c.registrationDate)} · LwM2M ${c.lwM2mVersion} · ${c.security || 'none'} · queue mode ${c.queueMode ? 'yes' : 'no'} · binding ${c.bindingMode}`));
  const cells = new Map(); // path -> value cell, for notifications
  const instances = [...(c.objectLinks || '').matchAll(/<\/(\d+)\/(\d+)>/g)].map((m) => [+m[1], +m[2]]);
  for (const [oid, iid] of instances) {
    const m = models.get(oid);
    const rows = (m ? m.resources : []).map((r) => {
      const path = `/${oid}/${iid}/${r.id}`;
      const val = h('td', { className: 'val' });
      cells.set(path, val);
      const call = async (what, opts) => {
        val.textContent = '…';
        try {
          const res = await api('/api/clients/' + encodeURIComponent(ep) + path + what, opts);
          val.textContent = opts && opts.method === 'POST' && !what ? res.status : valueOf(res);
          if (path === '/3/0/3') versions.set(ep, val.textContent);
          return true;
        } catch (e) { val.textContent = e.message; return false; }
      };
      const ops = h('td');
      if (r.operations.includes('R')) {
        const obs = h('button', { type: 'button', 'aria-pressed': 'false' }, 'Observe');
        obs.addEventListener('click', async () => {
          const on = obs.getAttribute('aria-pressed') === 'true';
          if (!await call('/observe', { method: on ? 'DELETE' : 'POST' })) return;
          if (on) val.textContent = '';
          obs.setAttribute('aria-pressed', String(!on)); obs.textContent = on ? 'Observe' : 'Stop';
        });
        ops.append(h('button', { type: 'button', onclick: () => call('') }, 'Read'), ' ', obs, ' ');
      }
      if (r.operations.includes('W')) {
        const input = h('input', { 'aria-label': `Value for ${r.name} ${path}` });
        ops.append(input, h('button', { type: 'button', onclick: async () => { await call('', { method: 'PUT', body: { value: input.value } }); await call(''); } }, 'Write'), ' ');
      }
      if (r.operations.includes('E')) ops.append(h('button', { type: 'button', onclick: () => call('', { method: 'POST', body: '', type: 'text/plain' }) }, 'Execute'));
      return h('tr', { 'data-path': path }, h('td', {}, r.id), h('td', {}, r.name), h('td', {}, r.operations), val, ops);
    });
    page.append(h('section', { className: 'card' }, h('h2', {}, `${m ? m.name : 'Object'} /${oid}/${iid}`),
      rows.length ? table(['ID', 'Resource', 'Ops', 'Value', 'Actions'], rows) : h('p', { className: 'muted' }, 'No model for this object.')));
  }
  const hist = h('section', { className: 'card' }, h('h2', {}, 'History'));
  page.append(hist);
  api('/api/clients/' + encodeURIComponent(ep) + '/history', { signal }).then((hs) => {
    const items = Array.isArray(hs) ? hs : (hs && (hs.entries || hs.history)) || [];
    hist.append(items.length ? table(['Time', 'Event', 'Detail'], items.slice(-100).reverse().map((x) =>
      h('tr', {}, h('td', {}, when(x.time)), h('td', {}, x.kind || ''),
        h('td', {}, [x.detail, x.campaign && `campaign ${x.campaign}`, x.state, x.version].filter(Boolean).join(' · ')))))
      : h('p', { className: 'muted' }, 'No history.'));
  }).catch((e) => hist.append(h('p', { className: 'error' }, e.message)));
  stream('/api/event?ep=' + encodeURIComponent(ep), (type, e) => {
    if (type !== 'NOTIFICATION' || !e.data) return;
    const cell = cells.get(e.data.res);
    if (cell) cell.textContent = valueOf(e.data.val);
  }, signal).catch(() => {});
}

async function firmware(page, signal) {
  const file = h('input', { type: 'file', id: 'fw-file', required: true });
  const type = h('input', { id: 'fw-type', placeholder: 'from the image' });
  const ver = h('input', { id: 'fw-version', placeholder: 'from the image' });
  const prog = h('progress', { max: 1, value: 0, 'aria-label': 'Upload progress' });
  const msg = status();
  const form = h('form', { className: 'card' }, h('h2', {}, 'Upload an image'),
    h('div', { className: 'row' }, field('Image file', file), field('Device type', type), field('Version', ver), h('button', { type: 'submit' }, 'Upload')), prog, msg);
  const lists = h('div');
  page.append(h('h1', {}, 'Firmware'), form, lists);
  const load = async () => {
    const [imgs, pkgs] = await Promise.all([api('/api/firmware', { signal }), api('/api/firmware/packages', { signal })]);
    const size = new Map((imgs || []).map((i) => [i.id, i.size]));
    lists.replaceChildren(h('h2', {}, 'Images'), table(['ID', 'Type', 'Version', 'Size', 'Uploaded'], (imgs || []).map((i) =>
      h('tr', {}, h('td', {}, i.id), h('td', {}, i.deviceType), h('td', {}, i.version), h('td', {}, i.size.toLocaleString() + ' B'), h('td', {}, when(i.created))))),
    h('h2', {}, 'Packages'), table(['Kind', 'From', 'To', 'Size', 'vs full image'], (pkgs || []).map((p) =>
      h('tr', {}, h('td', {}, p.kind), h('td', {}, p.fromVersion || '—'), h('td', {}, p.toVersion), h('td', {}, p.size.toLocaleString() + ' B'),
        h('td', {}, size.get(p.toImage) ? (100 * p.size / size.get(p.toImage)).toFixed(1) + ' %' : '—')))));
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    if (type.value) q.set('deviceType', type.value);
    if (ver.value) q.set('version', ver.value);
    msg.textContent = 'Uploading…';
    try {
      const img = await upload('/api/firmware?' + q, file.files[0], (f) => { prog.value = f; });
      msg.textContent = `Stored ${img.deviceType} ${img.version}.`;
      await load();
    } catch (e) { msg.textContent = e.message; }
  });
  await load();
}

const actions = ['pause', 'resume', 'abort', 'retry'];

async function campaigns(page, signal, id) {
  if (id) return campaign(page, signal, id);
  const imgs = await api('/api/firmware', { signal }) || [];
  const img = h('select', { id: 'c-image' }, imgs.map((i) => h('option', { value: i.id }, `${i.deviceType} ${i.version}`)));
  const name = h('input', { id: 'c-name' });
  const eps = h('input', { id: 'c-endpoints', placeholder: 'all of the type' });
  const waves = h('input', { id: 'c-waves', value: '100', placeholder: '10,50,100' });
  const succ = h('input', { id: 'c-success', type: 'number', min: 0, max: 1, step: 0.05, value: 1 });
  const errt = h('input', { id: 'c-error', type: 'number', min: 0, max: 1, step: 0.05, value: 0.2 });
  const msg = status();
  const form = h('form', { className: 'card' }, h('h2', {}, 'New campaign'), h('div', { className: 'row' },
    field('Name', name), field('Image', img), field('Endpoints (comma separated)', eps), field('Waves (%)', waves),
    field('Success threshold', succ), field('Error threshold', errt), h('button', { type: 'submit', id: 'c-start' }, 'Start')), msg);
  const list = h('div');
  page.append(h('h1', {}, 'Campaigns'), form, list);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const c = { name: name.value, image: img.value, waves: waves.value.split(',').map(Number).filter((n) => n > 0),
      successThreshold: +succ.value, errorThreshold: +errt.value };
    const e = eps.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (e.length) c.targets = { endpoints: e };
    try {
      const st = await api('/api/campaigns', { method: 'POST', body: c });
      location.hash = '#/campaigns/' + encodeURIComponent(st.id);
    } catch (err) { msg.textContent = err.message; }
  });
  const cs = await api('/api/campaigns', { signal }) || [];
  list.append(table(['Campaign', 'State', 'Target', 'Progress'], cs.map((c) => h('tr', {},
    h('td', {}, h('a', { href: '#/campaigns/' + encodeURIComponent(c.id) }, c.name || c.id)), h('td', {}, c.state),
    h('td', {}, `${c.deviceType} ${c.version}`), h('td', {}, pct(c.summary))))));
}

const pct = (s) => s && s.total ? `${Math.round(100 * s.succeeded / s.total)} % (${s.succeeded}/${s.total})` : '0 %';
const bar = (f, label) => h('div', { className: 'bar', role: 'progressbar', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(100 * f) }, h('span', { style: `width:${100 * f}%` }));

async function campaign(page, signal, id) {
  const view = h('div');
  const msg = status();
  const buttons = h('div', { className: 'row' }, actions.map((a) => h('button', { type: 'button', onclick: async () => {
    try { await api(`/api/campaigns/${encodeURIComponent(id)}/${a}`, { method: 'POST', body: '', type: 'text/plain' }); msg.textContent = a + ' done'; load(); } catch (e) { msg.textContent = e.message; }
  } }, a[0].toUpperCase() + a.slice(1))));
  page.append(h('p', {}, h('a', { href: '#/campaigns' }, '← Campaigns')), view, buttons, msg);
  const load = async () => {
    const c = await api('/api/campaigns/' + encodeURIComponent(id), { signal });
    const s = c.summary || { total: 0, succeeded: 0, byState: {} };
    const byWave = new Map();
    for (const d of c.devices || []) {
      const w = byWave.get(d.wave) || { total: 0, done: 0, states: {} };
      w.total++; if (d.state === 'succeeded') w.done++;
      w.states[d.state] = (w.states[d.state] || 0) + 1; byWave.set(d.wave, w);
    }
    view.replaceChildren(h('h1', {}, c.name || c.id), h('p', {}, `State: ${c.state}`, c.reason ? ` (${c.reason})` : '', ` · target ${c.deviceType} ${c.version} · waves ${(c.waves || []).join(', ')} %`),
      h('p', { className: 'progress', 'aria-live': 'polite' }, 'Progress: ', pct(s)), bar(s.total ? s.succeeded / s.total : 0, 'Campaign progress'),
      h('h2', {}, 'By state'), table(['State', 'Devices'], Object.entries(s.byState || {}).map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', {}, v)))),
      h('h2', {}, 'By wave'), table(['Wave', 'Devices', 'Succeeded', 'States'], [...byWave].sort((a, b) => a[0] - b[0]).map(([w, x]) =>
        h('tr', {}, h('td', {}, `${w + 1} (${(c.waves || [])[w] ?? '?'} %)`), h('td', {}, x.total), h('td', {}, x.done),
          h('td', {}, Object.entries(x.states).map(([k, v]) => `${k} ${v}`).join(', '))))));
  };
  await load();
  let pending = false;
  stream(`/api/campaigns/${encodeURIComponent(id)}/events`, () => {
    if (pending) return; // one reload at a time, whatever the event rate
    pending = true; setTimeout(() => { pending = false; load().catch(() => {}); }, 300);
  }, signal).catch(() => {});
}

async function bootstrap(page, signal) {
  page.append(h('h1', {}, 'Bootstrap'));
  let cfgs, creds;
  try {
    [cfgs, creds] = await Promise.all([api('/api/bootstrap', { signal }), api('/api/bootstrap/security/clients', { signal })]);
  } catch (e) {
    if (e.status === 404) { page.append(h('p', { className: 'muted' }, 'This server runs no bootstrap server.')); return; }
    throw e;
  }
  const entries = (x) => Array.isArray(x) ? x.map((v) => [v.endpoint, v]) : Object.entries(x || {});
  const del = (path, what) => h('button', { type: 'button', onclick: async () => { if (confirm('Delete ' + what + '?')) { await api(path, { method: 'DELETE' }); bootstrap(page.replaceChildren() || page, signal); } } }, 'Delete');
  page.append(h('h2', {}, 'Configurations'), table(['Endpoint', 'Configuration', ''], entries(cfgs).map(([ep, c]) =>
    h('tr', {}, h('td', {}, ep), h('td', {}, h('pre', {}, JSON.stringify(c, null, 1))), h('td', {}, del('/api/bootstrap/' + encodeURIComponent(ep), ep))))),
  h('h2', {}, 'Credentials'), table(['Endpoint', 'Mode', ''], entries(creds).map(([ep, c]) =>
    h('tr', {}, h('td', {}, ep), h('td', {}, (c.tls && c.tls.mode) || c.mode || ''), h('td', {}, del('/api/bootstrap/security/clients/' + encodeURIComponent(ep), ep))))));
}

export const pages = { devices, device, firmware, campaigns, bootstrap };
