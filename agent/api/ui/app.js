// berth status page. Everything shown comes from the admin API and is set
// with textContent or setAttribute, never parsed as HTML: challenge names,
// versions and event messages come from outside.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const MAX_PROBES = 60;
  const MAX_EVENTS = 200;
  const SHOWN_EVENTS = 100;
  const SETTLED = ['completed', 'rolled_back', 'failed'];

  let csrf = '';
  let skew = 0; // server clock minus ours, for uptimes
  let source = null;
  const rows = new Map(); // name → {el, refs, data, probes}
  const events = []; // oldest first
  let sortQueued = false;

  // el builds an element; text is set as text, never as markup.
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function toast(msg, bad) {
    const t = $('toast');
    t.textContent = msg;
    t.dataset.level = bad ? 'bad' : 'ok';
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, bad ? 8000 : 4000);
  }

  function setConn(state, text) {
    $('conn').dataset.state = state;
    $('conn').textContent = text;
  }

  // ---- session ----

  async function boot() {
    let r;
    try {
      r = await fetch('/ui/session', { cache: 'no-store' });
    } catch (e) {
      setConn('offline', 'berth unreachable');
      setTimeout(boot, 3000);
      return;
    }
    if (r.status === 401) { showLogin(''); return; }
    if (!r.ok) { setConn('offline', 'error ' + r.status); setTimeout(boot, 3000); return; }
    const info = await r.json();
    csrf = info.csrf || '';
    $('logout').hidden = !info.auth;
    $('login').hidden = true;
    $('main').hidden = false;
    connect();
  }

  function showLogin(msg) {
    if (source) { source.close(); source = null; }
    $('main').hidden = true;
    $('login').hidden = false;
    $('logout').hidden = true;
    $('login-error').textContent = msg;
    setConn('offline', 'logged out');
    $('token').focus();
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await fetch('/ui/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: $('token').value }),
    });
    $('token').value = '';
    if (r.ok) { boot(); return; }
    showLogin(r.status === 401 ? 'Wrong token.' : 'Login failed (' + r.status + ').');
  });

  $('logout').addEventListener('click', async () => {
    await fetch('/ui/logout', { method: 'POST' });
    showLogin('');
  });

  // ---- live stream ----

  function connect() {
    if (source) source.close();
    setConn('connecting', 'connecting…');
    source = new EventSource('/ui/stream');
    source.addEventListener('open', () => setConn('live', 'live'));
    source.addEventListener('challenges', (e) => applyChallenges(JSON.parse(e.data)));
    source.addEventListener('events', (e) => applyEvents(JSON.parse(e.data)));
    source.addEventListener('error', () => {
      if (source.readyState !== EventSource.CLOSED) { setConn('reconnecting', 'reconnecting…'); return; }
      // Refused outright (logged out, too many streams): ask why, then retry.
      source = null;
      setConn('reconnecting', 'reconnecting…');
      setTimeout(boot, 3000);
    });
  }

  function applyChallenges(f) {
    skew = Date.parse(f.now) - Date.now();
    if (f.full) {
      const listed = new Set(f.challenges.map((c) => c.name));
      for (const name of [...rows.keys()]) if (!listed.has(name)) removeRow(name);
    }
    for (const name of f.removed) removeRow(name);
    for (const c of f.challenges) {
      let row = rows.get(c.name);
      if (!row) { row = makeRow(c.name); rows.set(c.name, row); }
      row.probes = c.probes_reset ? c.probes : row.probes.concat(c.probes);
      if (row.probes.length > MAX_PROBES) row.probes = row.probes.slice(-MAX_PROBES);
      row.data = c;
      updateRow(row);
    }
    queueSort();
  }

  function applyEvents(list) {
    for (const e of list) {
      if (events.length && e.seq <= events[events.length - 1].seq) continue;
      events.push(e);
    }
    if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
    renderEvents();
  }

  // ---- levels and trouble ----

  function swapRunning(c) { return !!(c.swap && !SETTLED.includes(c.swap.phase)); }

  function stateLevel(s) {
    if (s === 'running') return 'ok';
    if (s === 'failed') return 'bad';
    if (s === 'stopped') return 'idle';
    return 'warn';
  }

  function healthLevel(h) {
    return { healthy: 'ok', degraded: 'warn', unhealthy: 'bad' }[h] || 'idle';
  }

  // trouble ranks what needs a look first: 0 is worst.
  function trouble(c) {
    if (c.state === 'failed') return 0;
    if (c.health === 'unhealthy') return 1;
    if (c.state !== 'running' || c.health === 'degraded') return 2;
    if (swapRunning(c) || (c.swap && c.swap.phase === 'failed')) return 3;
    if (c.health !== 'healthy') return 4;
    return 5;
  }

  function cardLevel(c) {
    const t = trouble(c);
    return t <= 1 ? 'bad' : t <= 4 ? 'warn' : 'ok';
  }

  // ---- one card per challenge ----

  function fact(dl, label, cls) {
    const d = el('div');
    d.append(el('dt', '', label));
    const dd = el('dd', cls);
    d.append(dd);
    dl.append(d);
    return dd;
  }

  function makeRow(name) {
    const card = el('article', 'card');
    card.dataset.name = name;
    const head = el('div', 'head');
    const refs = {};
    refs.name = el('span', 'name', name);
    refs.state = el('span', 'badge state');
    refs.health = el('span', 'badge health');
    head.append(refs.name, refs.state, refs.health);
    const dl = el('dl', 'facts');
    refs.version = fact(dl, 'version', 'version');
    refs.restarts = fact(dl, 'restarts', 'restarts');
    refs.uptime = fact(dl, 'uptime', 'uptime');
    refs.upstream = fact(dl, 'upstream', 'upstream');
    refs.response = fact(dl, 'response', 'response');
    refs.exit = fact(dl, 'last exit', 'exit');
    refs.spark = document.createElementNS(SVG, 'svg');
    refs.spark.setAttribute('class', 'spark');
    refs.spark.setAttribute('viewBox', '0 0 300 34');
    refs.spark.setAttribute('preserveAspectRatio', 'none');
    refs.swap = el('div', 'note swap');
    refs.extra = el('div', 'note extra');
    refs.error = el('div', 'note err');
    const actions = el('div', 'actions');
    refs.restart = el('button', 'restart', 'Restart');
    refs.restart.type = 'button';
    refs.versionInput = el('input', 'swap-version');
    refs.versionInput.placeholder = 'version';
    refs.versionInput.setAttribute('aria-label', 'version to swap ' + name + ' to');
    refs.swapBtn = el('button', 'swap-btn', 'Swap');
    refs.swapBtn.type = 'button';
    refs.rollback = el('button', 'rollback', 'Roll back');
    refs.rollback.type = 'button';
    actions.append(refs.restart, refs.versionInput, refs.swapBtn, refs.rollback);
    card.append(head, dl, refs.spark, refs.swap, refs.extra, refs.error, actions);

    refs.restart.addEventListener('click', () =>
      act(name, 'restart', null, 'Restart ' + name + ' now?'));
    refs.swapBtn.addEventListener('click', () => {
      const v = refs.versionInput.value.trim();
      if (!v) { toast('Enter the version to swap ' + name + ' to.', true); refs.versionInput.focus(); return; }
      const from = rows.get(name)?.data?.version || '?';
      act(name, 'swap', { version: v }, 'Swap ' + name + ' from ' + from + ' to ' + v + '?')
        .then((ok) => { if (ok) refs.versionInput.value = ''; });
    });
    refs.rollback.addEventListener('click', () => {
      const c = rows.get(name)?.data;
      act(name, 'rollback', null, 'Roll ' + name + ' back to ' + (c?.previous_version || '?') + '?');
    });
    return { el: card, refs, data: null, probes: [] };
  }

  function removeRow(name) {
    const row = rows.get(name);
    if (row) { row.el.remove(); rows.delete(name); }
  }

  function shortID(id) { return id ? id.slice(0, 12) : ''; }

  function updateRow(row) {
    const c = row.data;
    const r = row.refs;
    r.state.textContent = c.state;
    r.state.dataset.level = stateLevel(c.state);
    r.health.textContent = c.health;
    r.health.dataset.level = healthLevel(c.health);
    row.el.dataset.level = cardLevel(c);
    row.el.dataset.state = c.state;
    row.el.dataset.health = c.health;
    r.version.textContent = c.version || '—';
    r.version.title = c.image + (c.digest ? '@' + c.digest : '');
    r.restarts.textContent = String(c.restarts);
    r.upstream.textContent = (c.upstream || '').replace(/^https?:\/\//, '') || '—';
    r.upstream.title = c.upstream || '';
    r.response.textContent = c.response_time_ms ? c.response_time_ms.toFixed(1) + ' ms' : '—';
    r.exit.textContent = c.last_exit_code == null ? '—' : String(c.last_exit_code);
    updateUptime(row);

    const swap = c.swap;
    r.swap.hidden = !swap;
    if (swap) {
      let text = (swapRunning(c) ? 'swap ' : 'last swap ') + swap.from + ' → ' + swap.to + ': ' + swap.phase;
      if (swap.error) text += ' (' + swap.error + ')';
      r.swap.textContent = text;
    }
    // Fields later rounds add to the challenge object show when present.
    const extra = [];
    if (c.standby_container_id) extra.push('standby ' + shortID(c.standby_container_id));
    if (c.snapshot) {
      const s = c.snapshot;
      extra.push('snapshot #' + s.seq + ' v' + s.version + ', ' + s.bytes + ' B, ' + ago(Date.parse(s.at)));
    }
    r.extra.hidden = extra.length === 0;
    r.extra.textContent = extra.join(' · ');
    r.error.hidden = !c.last_error;
    r.error.textContent = c.last_error || '';

    r.swapBtn.disabled = swapRunning(c);
    r.rollback.disabled = !c.previous_version || swapRunning(c);
    r.rollback.title = c.previous_version ? 'back to ' + c.previous_version : 'no previous version';
    drawSpark(r.spark, row.probes);
    row.visible = matches(c);
    row.el.hidden = !row.visible;
  }

  function updateUptime(row) {
    const c = row.data;
    const started = c.started_at ? Date.parse(c.started_at) : NaN;
    row.refs.uptime.textContent = c.state === 'running' && !isNaN(started) ? duration(Date.now() + skew - started) : '—';
  }

  function duration(ms) {
    let s = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(s / 86400); s %= 86400;
    const h = Math.floor(s / 3600); s %= 3600;
    const m = Math.floor(s / 60); s %= 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + s + 's';
    return s + 's';
  }

  function ago(t) { return isNaN(t) ? '' : duration(Date.now() + skew - t) + ' ago'; }

  // drawSpark plots the probes' response times; failed probes are red dots.
  function drawSpark(svg, probes) {
    while (svg.firstChild) svg.firstChild.remove();
    if (!probes.length) {
      const t = document.createElementNS(SVG, 'text');
      t.setAttribute('x', '2'); t.setAttribute('y', '20');
      t.textContent = 'no probes yet';
      svg.append(t);
      return;
    }
    const W = 300, H = 34, pad = 3;
    const maxMS = Math.max(1, ...probes.map((p) => p.ms));
    const step = probes.length > 1 ? W / (MAX_PROBES - 1) : 0;
    const x0 = W - step * (probes.length - 1);
    const pts = [];
    probes.forEach((p, i) => {
      const x = x0 + i * step;
      const y = H - pad - (p.ms / maxMS) * (H - 2 * pad);
      pts.push(x.toFixed(1) + ',' + y.toFixed(1));
      if (!p.ok) {
        const dot = document.createElementNS(SVG, 'circle');
        dot.setAttribute('cx', x.toFixed(1)); dot.setAttribute('cy', y.toFixed(1)); dot.setAttribute('r', '2.5');
        svg.append(dot);
      }
    });
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('points', pts.join(' '));
    svg.prepend(line);
    const label = document.createElementNS(SVG, 'title');
    label.textContent = 'last ' + probes.length + ' probes, max ' + maxMS.toFixed(1) + ' ms';
    svg.append(label);
  }

  // ---- filter, sort, summary ----

  function matches(c) {
    const q = $('filter').value.trim().toLowerCase();
    if (!q) return true;
    return [c.name, c.state, c.health, c.version, c.image].some((v) => (v || '').toLowerCase().includes(q));
  }

  function queueSort() {
    if (sortQueued) return;
    sortQueued = true;
    requestAnimationFrame(() => { sortQueued = false; sortRows(); summarize(); });
  }

  function sortRows() {
    const by = $('sort').value;
    const list = [...rows.values()];
    list.sort((a, b) => {
      const x = a.data, y = b.data;
      if (by === 'trouble' && trouble(x) !== trouble(y)) return trouble(x) - trouble(y);
      if (by !== 'name' && x.restarts !== y.restarts) return y.restarts - x.restarts;
      return x.name < y.name ? -1 : x.name > y.name ? 1 : 0;
    });
    const box = $('challenges');
    // Move cards only when the order changed: moving a card loses the focus
    // of a version being typed into it.
    const current = [...box.children];
    if (current.length !== list.length || list.some((row, i) => current[i] !== row.el)) {
      box.replaceChildren(...list.map((row) => row.el));
    }
    $('empty').hidden = list.some((row) => row.visible);
  }

  function summarize() {
    const s = $('summary');
    s.replaceChildren();
    const counts = { healthy: 0, unhealthy: 0, failed: 0, other: 0 };
    for (const { data: c } of rows.values()) {
      if (c.state === 'failed') counts.failed++;
      else if (c.health === 'unhealthy') counts.unhealthy++;
      else if (c.health === 'healthy' && c.state === 'running') counts.healthy++;
      else counts.other++;
    }
    const parts = [[rows.size, 'challenges'], [counts.healthy, 'healthy'], [counts.unhealthy, 'unhealthy'],
      [counts.failed, 'failed'], [counts.other, 'changing or unknown']];
    parts.forEach(([n, label], i) => {
      if (i > 0) s.append(' · ');
      s.append(el('b', '', String(n)), ' ' + label);
    });
  }

  function refilter() {
    for (const row of rows.values()) { row.visible = matches(row.data); row.el.hidden = !row.visible; }
    $('empty').hidden = [...rows.values()].some((row) => row.visible);
    renderEvents();
  }

  $('filter').addEventListener('input', refilter);
  $('sort').addEventListener('change', sortRows);

  // ---- events ----

  function eventLevel(type) {
    if (/failed|gave_up|oom|exited|disconnected|rolled_back/.test(type)) return 'bad';
    if (/restarting|unhealthy|orphan|health_changed/.test(type)) return 'warn';
    if (/completed|started|reconnected|restored|promoted|adopted/.test(type)) return 'ok';
    return '';
  }

  function renderEvents() {
    const q = $('filter').value.trim().toLowerCase();
    const list = $('events');
    const items = [];
    for (let i = events.length - 1; i >= 0 && items.length < SHOWN_EVENTS; i--) {
      const e = events[i];
      if (q && !(e.challenge || '').toLowerCase().includes(q) && !e.type.includes(q)) continue;
      const li = el('li');
      li.dataset.seq = String(e.seq);
      const t = new Date(e.time);
      const time = el('span', 'time', t.toLocaleTimeString([], { hour12: false }));
      time.title = t.toISOString();
      const type = el('span', 'type', e.type);
      type.dataset.level = eventLevel(e.type);
      const who = el('span', 'who', (e.challenge || 'berth') + (e.version ? ' ' + e.version : ''));
      let msg = e.message || '';
      if (e.error && !msg.includes(e.error)) msg += (msg ? ': ' : '') + e.error;
      if (e.exit_code != null) msg += (msg ? ' ' : '') + '(exit ' + e.exit_code + ')';
      items.push(li);
      li.append(time, type, who, el('span', 'msg', msg));
    }
    list.replaceChildren(...items);
  }

  // ---- actions ----

  function confirmAction(text) {
    const d = $('confirm');
    $('confirm-text').textContent = text;
    return new Promise((resolve) => {
      const done = (ok) => {
        $('confirm-ok').onclick = null; $('confirm-cancel').onclick = null; d.onclose = null;
        if (d.open) d.close();
        resolve(ok);
      };
      $('confirm-ok').onclick = () => done(true);
      $('confirm-cancel').onclick = () => done(false);
      d.onclose = () => done(false);
      d.showModal();
      $('confirm-cancel').focus();
    });
  }

  async function act(name, kind, body, question) {
    if (!(await confirmAction(question))) return false;
    const opts = { method: 'POST', headers: { 'X-CSRF-Token': csrf } };
    if (body) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch('/v1/challenges/' + encodeURIComponent(name) + '/' + kind, opts);
    } catch (e) {
      toast(kind + ' ' + name + ': berth unreachable', true);
      return false;
    }
    const out = await r.json().catch(() => ({}));
    if (r.status === 401) { showLogin('Session expired; log in again.'); return false; }
    if (!r.ok) { toast(kind + ' ' + name + ': ' + (out.error || 'HTTP ' + r.status), true); return false; }
    if (kind === 'restart') toast('Restarting ' + name + '.');
    else toast('Swap of ' + name + ' ' + out.from + ' → ' + out.to + ' started.');
    return true;
  }

  setInterval(() => { for (const row of rows.values()) updateUptime(row); }, 1000);
  boot();
})();
