// Hypha node console (served at /): owns the polling of the admin API, the
// bearer token (sessionStorage only), and the rendering of every panel.
// Plain ES2020, no dependencies. API data reaches the page only through
// textContent and setAttribute, never innerHTML. Never logs to the console:
// errors are shown inside the panels.
(() => {
  'use strict';

  // ---------------------------------------------------------------- settings

  const TICK_MS = 2000;            // poll period
  const SLOW_EVERY = 5;            // partitions and files: every 5th tick (10 s)
  const READ_TIMEOUT_MS = 8000;    // a read that takes longer is abandoned
  const TRANSFER_TIMEOUT_MS = 600000; // uploads and downloads
  const MAX_BACKOFF_MS = 60000;    // a failing panel is retried at most this rarely
  const FILE_PAGE = 100;
  const JOB_LIMIT = 200;
  const MAX_PARTITION_ROWS = 300;
  const SETTLE_LIMIT_MS = 11000;   // a node serves files at most ~10 s after its start
  const TOKEN_KEY = 'hypha.console.token';
  const OPEN_KEY = 'hypha.console.openReads';

  // Every route the console may call, as "method path" in the spec's syntax.
  const ROUTE = {
    policy: 'get /v1/auth/policy',   // wanted, not (yet) served: see README.md
    whoami: 'get /v1/auth/whoami',
    node: 'get /v1/node',
    tls: 'get /v1/node/tls',
    members: 'get /v1/cluster/members',
    actors: 'get /v1/actors',
    partitions: 'get /v1/dht/partitions',
    files: 'get /v1/files',
    stat: 'get /v1/stat/{name}',
    download: 'get /v1/files/{name}',
    upload: 'put /v1/files/{name}',
    queues: 'get /v1/queues',
    jobs: 'get /v1/jobs',
    submit: 'post /v1/jobs',
    metrics: 'get /metrics',
    history: 'get /v1/node/history',
  };
  // Routes that only exist on some builds: called only if the spec lists them.
  const OPTIONAL = new Set([ROUTE.policy, ROUTE.tls, ROUTE.history]);

  // Panels, in the order they load; `node` fills the top bar.
  const PANELS = ['node', 'members', 'charts', 'supervision', 'partitions', 'files', 'jobs', 'wasm'];
  const FIRST = ['node', 'members'];         // loaded first: they detect a dead node cheaply
  const SLOW = new Set(['partitions', 'files', 'wasm']);
  const PANEL_ROUTE = {
    node: ROUTE.node,
    members: ROUTE.members,
    charts: ROUTE.history,
    supervision: ROUTE.actors,
    partitions: ROUTE.partitions,
    files: ROUTE.files,
    jobs: ROUTE.queues,
    wasm: ROUTE.metrics,
  };
  // Panels whose routes answer 503 until the node's membership view settled.
  const NEEDS_SETTLED = new Set(['files', 'jobs']);

  // ------------------------------------------------------------------- state

  const S = {
    routes: null,        // Set of "method path" from /openapi.json; null: unknown
    specTried: false,
    token: '',
    auth: 'unknown',     // unknown | needed | open | token | refused
    authMsg: '',
    policyKnown: false,  // the node said whether reads are open
    authRetryAt: 0,      // a failed token check is retried from then
    role: null,          // read | write | admin
    maxFileBytes: null,
    paused: false,
    timer: 0,
    running: false,
    pending: null,       // dirty | tick | all
    tickNo: 0,
    netFailures: 0,
    netSkipUntil: 0,
    skewMs: 0,           // node clock minus ours
    ready: false,
    panels: {},
    notes: {},           // panel -> {text, tone}: a warning its data carries
    node: null,
    tls: null,
    names: new Map(),    // node id -> member name
    peersJoining: false,
    tree: { collapsed: new Set() },
    parts: { problemsOnly: true, data: null, focus: null },
    hist: { samples: [], next: 0, interval: null, capacity: 720 },
    files: {
      prefix: '', cursor: '', back: [], next: null, internal: false,
      listed: new Map(), selected: null, stat: null, statErr: '', statBusy: false, degraded: false,
    },
    jobs: { queues: [], queue: null, state: '', expanded: new Set() },
  };

  const $ = (id) => document.getElementById(id);

  // ----------------------------------------------------------- small helpers

  function store(kind) {
    try { return window[kind]; } catch (_) { return null; }
  }
  function sessionGet(key) {
    try { return store('sessionStorage')?.getItem(key) || ''; } catch (_) { return ''; }
  }
  function sessionSet(key, value) {
    try {
      const s = store('sessionStorage');
      if (!s) return;
      if (value) s.setItem(key, value); else s.removeItem(key);
    } catch (_) { /* storage refused: the token lives for this page only */ }
  }

  // Build an element. Strings become text nodes; attributes go through
  // setAttribute, so API data is never parsed as HTML.
  const h = (tag, attrs, ...kids) => dress(document.createElement(tag), attrs, kids);
  // The same for SVG (the charts and the partition map are drawn by hand).
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const sv = (tag, attrs, ...kids) => dress(document.createElementNS(SVG_NS, tag), attrs, kids);

  function dress(el, attrs, kids) {
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v == null || v === false) continue;
        if (k === 'class') el.setAttribute('class', v);
        else if (k === 'text') el.textContent = String(v);
        else if (k === 'style') for (const [p, pv] of Object.entries(v)) el.style.setProperty(p, pv);
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  // Replace an element's children; null and false are skipped.
  function fill(el, ...kids) {
    el.replaceChildren(...kids.flat(Infinity).filter((k) => k != null && k !== false));
  }

  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const str = (v) => (v == null ? '' : String(v));
  const short = (s, n = 12) => { s = str(s); return s.length > n ? s.slice(0, n) + '…' : s; };

  function fmtBytes(n) {
    n = num(n);
    if (n == null) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  }

  function fmtDur(ms) {
    ms = num(ms);
    if (ms == null) return '—';
    if (ms < 0) ms = 0;
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} m ${Math.floor(s % 60)} s`;
    const hr = Math.floor(m / 60);
    if (hr < 48) return `${hr} h ${m % 60} m`;
    return `${Math.floor(hr / 24)} d ${hr % 24} h`;
  }

  const nodeNow = () => Date.now() + S.skewMs;
  const fmtAgo = (unixMs) => (num(unixMs) == null ? '—' : `${fmtDur(nodeNow() - unixMs)} ago`);
  const fmtClock = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  function fmtStamp(unixMs) {
    if (num(unixMs) == null) return '';
    const d = new Date(unixMs);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtClock(d)}`;
  }

  // A time cell: relative age, absolute time as the tooltip.
  const ago = (unixMs) => h('span', { title: fmtStamp(unixMs) || null }, fmtAgo(unixMs));

  const TONES = {
    // members
    up: 'ok', joining: 'info', suspect: 'warn', down: 'bad', left: 'neutral',
    // children
    running: 'ok', restarting: 'warn', stopped: 'warn',
    // jobs (running shares the child tone)
    queued: 'neutral', offered: 'info', done: 'ok', dead_letter: 'bad', cancelled: 'neutral',
    // anti-entropy
    equal: 'ok', repaired: 'warn', failed: 'bad', replica: 'neutral', handing_off: 'info',
  };
  const badge = (text, tone) => h('span', { class: `badge tone-${tone || TONES[text] || 'neutral'}` }, str(text) || '—');

  const labelChips = (labels) => {
    const entries = Object.entries(labels || {});
    if (!entries.length) return h('span', { class: 'muted' }, '—');
    return h('span', { class: 'chips' }, entries.map(([k, v]) => h('span', { class: 'chip', title: `${k}=${v}` }, `${k}=${v}`)));
  };

  // A table with a header row; rows are <tr> elements (or arrays of cells).
  function table(headers, rows, cls) {
    return h('table', { class: `data ${cls || ''}` },
      h('thead', null, h('tr', null, headers.map((x) => (x instanceof Node ? x : h('th', null, x))))),
      h('tbody', null, rows));
  }
  const td = (content, cls, title) => h('td', { class: cls || null, title: title || null }, content);

  // A member's name from its node id (or "<id>.<generation>").
  function memberName(idOrKey) {
    const s = str(idOrKey);
    const dot = s.lastIndexOf('.');
    const id = S.names.has(s) ? s : dot > 0 ? s.slice(0, dot) : s;
    const name = S.names.get(id);
    return name ? (id === s ? name : `${name}${s.slice(dot)}`) : short(s, 12);
  }

  function encodePath(name) {
    return str(name).split('/').map(encodeURIComponent).join('/');
  }

  // ------------------------------------------------------------------- fetch

  // One request. Never throws: answers {ok, status, data, headers} or
  // {ok:false, status, code, message, retryAfter}; status 0 is a network
  // failure or a timeout.
  async function api(method, path, opts = {}) {
    const { query, body, headers, timeoutMs = READ_TIMEOUT_MS, as = 'json', auth = true } = opts;
    let url = path;
    if (query) {
      const qs = new URLSearchParams();
      for (const [k, v] of query) if (v != null && v !== '') qs.append(k, String(v));
      const s = qs.toString();
      if (s) url += `?${s}`;
    }
    const hdrs = new Headers(headers || {});
    if (auth && S.token) hdrs.set('Authorization', `Bearer ${S.token}`);
    if (!hdrs.has('Accept')) hdrs.set('Accept', as === 'json' ? 'application/json' : '*/*');
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const res = await fetch(url, {
        method, headers: hdrs, body, signal: ctl.signal, cache: 'no-store', credentials: 'same-origin',
      });
      if (res.ok && as === 'blob') return { ok: true, status: res.status, data: await res.blob(), headers: res.headers };
      const text = await res.text();
      let data = null;
      if (text) { try { data = JSON.parse(text); } catch (_) { data = text; } }
      if (res.ok) return { ok: true, status: res.status, data, headers: res.headers };
      const err = data && typeof data === 'object' && data.error ? data.error : {};
      return {
        ok: false,
        status: res.status,
        code: str(err.code) || `http_${res.status}`,
        message: str(err.message) || (typeof data === 'string' ? data.slice(0, 200) : '') || res.statusText || 'request failed',
        retryAfter: Number(res.headers.get('Retry-After')) || 0,
      };
    } catch (e) {
      const timedOut = e && e.name === 'AbortError';
      return {
        ok: false, status: 0, code: timedOut ? 'timeout' : 'network',
        message: timedOut ? `no answer within ${Math.round(timeoutMs / 1000)} s` : 'the node is unreachable',
      };
    } finally {
      clearTimeout(timer);
    }
  }

  const describe = (res) => (res.status ? `${res.status} ${res.code}: ${res.message}` : res.message);

  // Whether this node serves a route (by its OpenAPI spec). Without a spec,
  // every documented route is assumed and optional ones are not called.
  const has = (route) => (S.routes ? S.routes.has(route) : !OPTIONAL.has(route));

  async function loadSpec() {
    if (S.specTried) return;
    const res = await api('GET', '/openapi.json', { auth: false });
    if (!res.ok && res.status === 0) return; // unreachable: retried at the next cycle
    S.specTried = true; // an HTTP error is not asked again: documented routes are assumed
    if (!res.ok) return;
    const paths = res.data && typeof res.data === 'object' ? res.data.paths : null;
    if (!paths || typeof paths !== 'object') return;
    const routes = new Set();
    for (const [path, item] of Object.entries(paths)) {
      for (const method of Object.keys(item || {})) routes.add(`${method.toLowerCase()} ${path}`);
    }
    S.routes = routes;
  }

  // -------------------------------------------------------------------- auth

  const canRead = () => S.auth === 'open' || S.auth === 'token';
  const canWrite = () => S.auth === 'token' && (S.role === 'write' || S.role === 'admin');

  function setAuth(kind, msg) {
    S.auth = kind;
    S.authMsg = msg || '';
    renderAuth();
  }

  // Learn whether reads are open without a request that could fail.
  async function readsOpen() {
    if (has(ROUTE.policy)) {
      const res = await api('GET', '/v1/auth/policy', { auth: false });
      if (res.ok && typeof res.data?.open_reads === 'boolean') return res.data.open_reads;
    }
    const res = await api('GET', '/health', { auth: false });
    if (res.ok && typeof res.data?.open_reads === 'boolean') return res.data.open_reads;
    return null;
  }

  async function resolveAuth() {
    S.token = sessionGet(TOKEN_KEY);
    S.role = null;
    if (S.token) {
      if (!has(ROUTE.whoami)) { S.role = 'read'; setAuth('token', 'token set (role unknown)'); return; }
      const res = await api('GET', '/v1/auth/whoami');
      if (res.ok) {
        S.role = str(res.data?.role) || 'read';
        S.maxFileBytes = num(res.data?.max_file_bytes);
        setAuth('token', `role: ${S.role}`);
      } else if (res.status === 401 || res.status === 403) {
        forgetToken();
        setAuth('refused', res.code === 'token_expired' ? 'token expired: enter a new one' : 'token refused: enter another one');
      } else {
        S.authRetryAt = Date.now() + 10000;
        setAuth('unknown', `checking the token: ${describe(res)}; retrying`);
      }
      return;
    }
    const open = await readsOpen();
    S.policyKnown = open !== null;
    if (open === true || (open === null && sessionGet(OPEN_KEY) === '1')) {
      S.role = 'read';
      setAuth('open', 'reads are open; a write token enables uploads and jobs');
    } else {
      setAuth('needed', open === false ? 'this node needs a token for reads' : 'a read token is needed');
    }
  }

  // A protected read answered 401: stop polling until a token is entered.
  function authLost(res) {
    if (S.auth === 'open') {
      sessionSet(OPEN_KEY, '');
      setAuth('needed', 'a read token is needed');
    } else if (S.auth === 'token') {
      forgetToken();
      setAuth('refused', res.code === 'token_expired' ? 'token expired: enter a new one' : 'token refused: enter another one');
    }
  }

  // A refused token is dropped, so that a reload does not present it again.
  function forgetToken() {
    sessionSet(TOKEN_KEY, '');
    S.token = '';
    S.role = null;
  }

  function resetPanels() {
    S.panels = {};
    S.ready = false;
    document.body.removeAttribute('data-ready');
  }

  function applyToken(token) {
    sessionSet(TOKEN_KEY, token);
    S.token = token;
    S.role = null;
    S.maxFileBytes = null;
    S.authRetryAt = 0;
    resetPanels();
    setAuth('unknown', token ? 'checking the token…' : '');
    kick('all');
  }

  // The user asked to try reads without a token: one explicit probe.
  async function tryOpenReads() {
    const route = has(ROUTE.whoami) ? '/v1/auth/whoami' : '/v1/node';
    $('try-open').disabled = true;
    const res = await api('GET', route, { auth: false });
    $('try-open').disabled = false;
    if (res.ok) {
      sessionSet(OPEN_KEY, '1');
      S.role = 'read';
      resetPanels();
      setAuth('open', 'reads are open; a write token enables uploads and jobs');
      kick('all');
    } else if (res.status === 401 || res.status === 403) {
      setAuth('needed', 'this node needs a token for reads');
    } else {
      setAuth('needed', `could not check: ${describe(res)}`);
    }
  }

  function renderAuth() {
    document.body.setAttribute('data-auth', S.auth);
    const status = $('auth-status');
    const text = {
      unknown: S.authMsg || 'checking…',
      needed: S.authMsg || 'a read token is needed',
      open: S.authMsg,
      token: S.authMsg || 'token set',
      refused: S.authMsg,
    }[S.auth];
    status.textContent = text || '';
    status.className = `auth-status tone-text-${{ token: 'ok', open: 'ok', needed: 'warn', refused: 'bad' }[S.auth] || 'neutral'}`;
    $('token').placeholder = S.token ? 'token set (hidden)' : 'bearer token';
    $('token-clear').disabled = !S.token;
    $('try-open').hidden = !(S.auth === 'needed' && !S.token && !S.policyKnown);
    if (!canRead()) renderLocked();
    renderWriteControls();
  }

  // No reads possible: clear every panel and say why.
  function renderLocked() {
    if (S.auth === 'unknown' && !S.authMsg) return;
    const msg = S.auth === 'refused' ? `${S.authMsg}.`
      : S.auth === 'unknown' ? S.authMsg
        : 'A read token is needed: enter one above.';
    for (const name of PANELS) {
      if (name === 'node') continue;
      setPanelMsg(name, msg, S.auth === 'refused' ? 'bad' : 'warn');
    }
    fill($('members-body'));
    fill($('charts-body'));
    $('charts-summary').textContent = '';
    fill($('partition-map'));
    $('member-count').textContent = '0';
    $('members-summary').textContent = '';
    fill($('supervision-body'));
    $('supervision-summary').textContent = '';
    fill($('partitions-body'));
    $('partitions-summary').textContent = '';
    fill($('files-body'));
    $('files-summary').textContent = '';
    fill($('queues-body'));
    fill($('jobs-body'));
    $('jobs-summary').textContent = '';
    S.files.selected = null;
    S.files.stat = null;
    renderFileDetail();
  }

  // Upload and submit forms: shown only to a write or admin token.
  function renderWriteControls() {
    const write = canWrite();
    const uploadOk = write && has(ROUTE.upload);
    const submitOk = write && has(ROUTE.submit);
    $('upload').hidden = !uploadOk;
    $('submit').hidden = !submitOk;
    const note = S.auth === 'token' || S.auth === 'open' ? 'Read-only: a write token enables' : null;
    $('files-readonly').hidden = uploadOk || !note;
    $('files-readonly').textContent = note ? `${note} uploads.` : '';
    $('jobs-readonly').hidden = submitOk || !note;
    $('jobs-readonly').textContent = note ? `${note} job submission.` : '';
  }

  // ----------------------------------------------------------- panel status

  function panel(name) {
    if (!S.panels[name]) S.panels[name] = { everOk: false, failures: 0, skipUntil: 0, disabled: '', dirty: false, at: 0 };
    return S.panels[name];
  }

  function setPanelMsg(name, text, tone) {
    const el = name === 'node' ? $('node-msg') : $(`${name}-msg`);
    if (!el) return;
    el.textContent = text || '';
    el.hidden = !text;
    el.className = name === 'node' ? `inline-msg tone-text-${tone || 'neutral'}` : `panel-msg tone-${tone || 'neutral'}`;
  }

  function stampAsOf(name) {
    const el = $(`${name}-asof`);
    if (el) el.textContent = `as of ${fmtClock(new Date())}`;
  }

  // Record a panel's outcome: 'ok', 'fail', 'auth' or 'network'.
  function settle(name, res) {
    const p = panel(name);
    if (res.ok) {
      p.everOk = true;
      p.failures = 0;
      p.skipUntil = 0;
      p.at = Date.now();
      const note = S.notes[name];
      setPanelMsg(name, note ? note.text : '', note ? note.tone : null);
      stampAsOf(name);
      return 'ok';
    }
    if (res.status === 401) { authLost(res); return 'auth'; }
    if (res.code === 'network') return 'network';
    if (res.status === 403 || res.status === 404 || res.status === 405) {
      // Not going to change by asking again.
      p.disabled = res.status === 403 ? `this token may not read this (${res.message})` : 'this node does not serve this panel\'s route';
      setPanelMsg(name, p.disabled, 'bad');
      return 'fail';
    }
    p.failures += 1;
    const wait = res.status === 429 && res.retryAfter
      ? res.retryAfter * 1000
      : Math.min(MAX_BACKOFF_MS, TICK_MS * 2 ** p.failures);
    p.skipUntil = Date.now() + wait;
    const joining = res.code === 'node_joining';
    setPanelMsg(name, `${joining ? 'The node is joining the cluster' : describe(res)}; retrying in ${fmtDur(wait)}${p.everOk ? ' (showing older data)' : ''}.`, joining ? 'info' : 'bad');
    return 'fail';
  }

  // ------------------------------------------------------------------ loaders
  // Each loader fetches, renders on success, and answers the failing (or the
  // last) response.

  async function loadNode(slowTurn) {
    const t0 = Date.now();
    const res = await api('GET', '/v1/node');
    if (!res.ok) return res;
    const t1 = Date.now();
    S.node = res.data || {};
    const clock = num(S.node.clock_unix_ms);
    if (clock != null) S.skewMs = clock - (t0 + t1) / 2;
    if (slowTurn && has(ROUTE.tls)) {
      const tls = await api('GET', '/v1/node/tls');
      if (tls.ok) S.tls = tls.data;
      else if (tls.status === 401) return tls;
    }
    renderNode();
    return res;
  }

  async function loadMembers() {
    const res = await api('GET', '/v1/cluster/members');
    if (!res.ok) return res;
    const members = Array.isArray(res.data?.members) ? res.data.members : [];
    S.names = new Map(members.filter((m) => m.name).map((m) => [str(m.id), str(m.name)]));
    S.peersJoining = members.some((m) => !m.is_self && m.state === 'joining');
    renderMembers(res.data || {}, members);
    return res;
  }

  async function loadSupervision() {
    const res = await api('GET', '/v1/actors');
    if (res.ok) renderTree(res.data || {});
    return res;
  }

  async function loadPartitions() {
    const res = await api('GET', '/v1/dht/partitions');
    if (!res.ok) return res;
    S.parts.data = Array.isArray(res.data?.partitions) ? res.data.partitions : [];
    renderPartitions();
    return res;
  }

  async function loadFiles() {
    const f = S.files;
    const res = await api('GET', '/v1/files', {
      query: [['prefix', f.prefix], ['limit', FILE_PAGE], ['cursor', f.cursor]],
    });
    if (!res.ok) return res;
    const files = Array.isArray(res.data?.files) ? res.data.files : [];
    f.next = res.data?.next_cursor || null;
    const before = f.listed;
    f.listed = new Map(files.map((x) => [str(x.name), x]));
    renderFiles(files, !!res.data?.incomplete);
    // Keep the selected file's stat current, asking only when the listing
    // shows it changed; a file that left the listing is not asked for.
    if (f.selected != null) {
      const now = f.listed.get(f.selected);
      if (!now) {
        if (before.has(f.selected)) { f.statErr = 'no longer listed (deleted or renamed)'; renderFileDetail(); }
      } else if (f.stat && str(f.stat.version) !== str(now.version)) {
        statFile(f.selected).catch(() => {});
      }
    }
    return res;
  }

  async function loadJobs() {
    const j = S.jobs;
    const qres = await api('GET', '/v1/queues');
    if (!qres.ok) return qres;
    j.queues = Array.isArray(qres.data?.queues) ? qres.data.queues : [];
    const names = j.queues.map((q) => str(q.queue));
    if (j.queue == null || (!names.includes(j.queue) && !j.pinned)) j.queue = names[0] ?? null;
    renderQueues();
    if (j.queue == null || !has(ROUTE.jobs)) {
      renderJobs(null);
      return qres;
    }
    const queue = j.queue;
    const res = await api('GET', '/v1/jobs', {
      query: [['queue', queue], ['state', j.state], ['limit', JOB_LIMIT]],
    });
    if (!res.ok) return res;
    if (queue === j.queue) renderJobs(Array.isArray(res.data?.jobs) ? res.data.jobs : []);
    return res;
  }

  // The node's own `hypha_wasm_*` series from its Prometheus text: the
  // compile cache, sandbox times, fuel and failures by reason.
  async function loadWasm() {
    const res = await api('GET', '/metrics', { as: 'text', auth: false });
    if (!res.ok) return res;
    renderWasm(parseMetrics(typeof res.data === 'string' ? res.data : '', 'hypha_wasm_'));
    return res;
  }

  // The node's own history (GET /v1/node/history): only the samples since
  // the last answer are asked for; a node that restarted numbers them from
  // 0 again, and then the history is read whole.
  async function loadCharts() {
    const hist = S.hist;
    const res = await api('GET', '/v1/node/history', {
      query: [['since_seq', hist.samples.length ? hist.next : '']],
    });
    if (!res.ok) return res;
    const d = res.data || {};
    const next = num(d.next_seq) ?? 0;
    const interval = num(d.interval_ms);
    if (hist.samples.length && (next < hist.next || interval !== hist.interval)) {
      hist.samples = [];
      hist.next = 0;
      return loadCharts();
    }
    const fresh = (Array.isArray(d.samples) ? d.samples : []).filter((x) => num(x.seq) != null && x.seq >= hist.next);
    hist.capacity = num(d.capacity) || hist.capacity;
    hist.samples = hist.samples.concat(fresh).slice(-hist.capacity);
    hist.next = next;
    hist.interval = interval;
    renderCharts();
    return res;
  }

  const LOADERS = {
    charts: loadCharts,
    wasm: loadWasm,
    node: loadNode,
    members: loadMembers,
    supervision: loadSupervision,
    partitions: loadPartitions,
    files: loadFiles,
    jobs: loadJobs,
  };

  async function runPanel(name, slowTurn) {
    const p = panel(name);
    p.dirty = false;
    let res;
    try {
      res = await LOADERS[name](slowTurn);
    } catch (e) {
      setPanelMsg(name, `The console failed to show this panel: ${e && e.message ? e.message : e}`, 'bad');
      return 'fail';
    }
    return settle(name, res);
  }

  // ---------------------------------------------------------------- schedule

  const RANK = { dirty: 0, tick: 1, all: 2 };

  // Ask for a cycle: 'tick' (the poll), 'all' (every panel now) or 'dirty'
  // (only panels the user just changed). Cycles never overlap.
  function kick(mode) {
    if (!S.pending || RANK[mode] > RANK[S.pending]) S.pending = mode;
    drain();
  }

  async function drain() {
    if (S.running) return;
    S.running = true;
    try {
      while (S.pending) {
        const mode = S.pending;
        S.pending = null;
        await cycle(mode);
      }
    } catch (e) {
      showNotice(`Console error: ${e && e.message ? e.message : e}`);
    } finally {
      S.running = false;
      schedule();
    }
  }

  // The next poll starts TICK_MS after the last cycle ended, so a slow node
  // is never asked faster than it answers.
  function schedule() {
    clearTimeout(S.timer);
    S.timer = setTimeout(() => { if (!S.paused) kick('tick'); }, TICK_MS);
  }

  async function cycle(mode) {
    await loadSpec();
    if (S.auth === 'unknown' && Date.now() >= S.authRetryAt) await resolveAuth();
    if (!canRead()) { renderLocked(); return; }
    const now = Date.now();
    if (mode !== 'all' && now < S.netSkipUntil) return;
    const slowTurn = mode === 'all' || (mode === 'tick' && S.tickNo % SLOW_EVERY === 0);
    if (mode === 'tick') S.tickNo += 1;

    const due = (name) => {
      const p = panel(name);
      if (p.disabled) return false;
      if (!has(PANEL_ROUTE[name])) {
        p.disabled = 'this node does not serve this panel\'s route';
        setPanelMsg(name, p.disabled, 'neutral');
        return false;
      }
      if (mode === 'dirty') return p.dirty;
      if (mode !== 'all' && now < p.skipUntil) return false;
      if (mode === 'tick' && SLOW.has(name) && !slowTurn && p.everOk && !p.failures && !p.dirty) return false;
      return true;
    };
    // Files and jobs answer 503 while a freshly started node's view settles
    // (a peer still Joining, for at most SETTLE_LIMIT_MS): wait, not ask.
    const settledEnough = (name) => {
      if (!NEEDS_SETTLED.has(name) || !S.peersJoining) return true;
      const started = num(S.node?.started_unix_ms);
      if (started == null || nodeNow() - started >= SETTLE_LIMIT_MS) return true;
      setPanelMsg(name, 'Waiting for the node\'s membership view to settle (a peer is joining)…', 'info');
      return false;
    };

    const outcomes = [];
    const first = FIRST.filter(due);
    outcomes.push(...await Promise.all(first.map((n) => runPanel(n, slowTurn))));
    if (outcomes.includes('network')) return nodeUnreachable();
    if (!canRead()) { renderLocked(); return; }

    const rest = PANELS.filter((n) => !FIRST.includes(n) && due(n) && settledEnough(n));
    outcomes.push(...await Promise.all(rest.map((n) => runPanel(n, slowTurn))));
    if (outcomes.includes('network')) return nodeUnreachable();
    if (!canRead()) { renderLocked(); return; }

    if (S.netFailures) { S.netFailures = 0; showNotice(''); }
    if (outcomes.length && !outcomes.includes('fail')) stampUpdated();
    renderRefreshStatus();
    markReady();
  }

  function nodeUnreachable() {
    S.netFailures += 1;
    const wait = Math.min(30000, TICK_MS * 2 ** (S.netFailures - 1));
    S.netSkipUntil = Date.now() + wait;
    showNotice(`The node is unreachable; retrying in ${fmtDur(wait)}. Panels show the last data received.`);
    renderRefreshStatus();
  }

  function stampUpdated() {
    const now = new Date();
    const el = $('last-updated');
    el.textContent = fmtClock(now);
    el.setAttribute('datetime', now.toISOString());
  }

  function renderRefreshStatus() {
    const failing = PANELS.filter((n) => panel(n).failures > 0);
    const el = $('refresh-status');
    if (S.netFailures) { el.textContent = 'node unreachable'; el.className = 'inline-msg tone-text-bad'; return; }
    el.textContent = failing.length ? `${failing.length} panel${failing.length > 1 ? 's' : ''} failing` : '';
    el.className = 'inline-msg tone-text-warn';
  }

  // data-ready: every panel this node serves has loaded once.
  function markReady() {
    if (S.ready) return;
    if (PANELS.every((n) => panel(n).everOk || panel(n).disabled)) {
      S.ready = true;
      document.body.setAttribute('data-ready', '1');
    }
  }

  function showNotice(text) {
    const el = $('notice');
    el.textContent = text || '';
    el.hidden = !text;
  }

  function markDirty(name) {
    panel(name).dirty = true;
    kick('dirty');
  }

  // ------------------------------------------------------------------- node

  function renderNode() {
    const n = S.node || {};
    const name = str(n.name) || short(n.id);
    $('node-name').textContent = name;
    $('node-name').title = str(n.id);
    document.title = `${name} · Hypha console`;
    const parts = [];
    if (n.version) parts.push(`v${n.version}`);
    if (num(n.generation) != null) parts.push(`gen ${n.generation}`);
    if (num(n.started_unix_ms) != null) parts.push(`up ${fmtDur(nodeNow() - n.started_unix_ms)}`);
    if (n.http) parts.push(`http ${n.http}`);
    if (n.cluster) parts.push(`cluster ${n.cluster}`);
    if (S.tls && typeof S.tls.links === 'string') parts.push(`links ${S.tls.links}`);
    const meta = $('node-meta');
    fill(meta, parts.join(' · '));
    if (Math.abs(S.skewMs) >= 2000) {
      meta.append(' · ', h('span', { class: 'tone-text-warn', title: 'node clock minus this browser\'s clock' },
        `clock skew ${S.skewMs > 0 ? '+' : '−'}${fmtDur(Math.abs(S.skewMs))}`));
    }
  }

  // ---------------------------------------------------------------- members

  function renderMembers(view, members) {
    const rows = members.map((m) => {
      const name = str(m.name) || str(m.id);
      const cap = m.capacity || {};
      const load = m.load || null;
      const jobs = load
        ? (num(load.job_slots) ? `${load.jobs_running ?? 0}/${load.job_slots}` : str(load.jobs_running ?? 0))
        : '—';
      return h('tr', { 'data-member': name, 'data-state': str(m.state), class: m.is_self ? 'self' : null },
        td([h('span', { class: 'strong', title: str(m.id) }, name), m.is_self ? h('span', { class: 'tag' }, 'self') : null]),
        td(badge(str(m.state))),
        td(m.is_self ? '—' : m.linked ? 'linked' : h('span', { class: 'tone-text-warn' }, 'no link')),
        td(m.is_self ? '—' : `${fmtDur(m.last_heard_ms)} ago`, 'num'),
        td(str(m.cluster_addr) || '—', 'mono'),
        td(httpLink(m), 'mono'),
        td(num(cap.cores) ?? '—', 'num'),
        td(fmtBytes(cap.memory_bytes), 'num'),
        td(fmtBytes(load ? load.free_disk_bytes : cap.free_disk_bytes), 'num'),
        td(load ? `${Number(load.load_avg_1m || 0).toFixed(2)} / ${load.run_queue ?? 0}` : '—', 'num', 'load average (1 m) / run queue'),
        td(jobs, 'num', 'job attempts running / slots'),
        td(load ? str(load.job_queue_depth ?? 0) : '—', 'num'),
        td(`${m.generation ?? '—'} / ${m.incarnation ?? '—'}`, 'num mono', 'generation / SWIM incarnation'),
        td(labelChips(m.labels)));
    });
    fill($('members-body'), rows.length
      ? table(['Name', 'State', 'Link', 'Heard', 'Cluster addr', 'HTTP addr', 'Cores', 'Memory', 'Free disk', 'Load 1m / runq', 'Jobs', 'Job queue', 'Gen / inc', 'Labels'], rows)
      : h('p', { class: 'empty' }, 'No members known.'));
    $('member-count').textContent = String(members.length);
    const counts = {};
    for (const m of members) counts[m.state] = (counts[m.state] || 0) + 1;
    const summary = Object.entries(counts).map(([s, c]) => `${c} ${s}`).join(' · ');
    $('members-summary').textContent = summary;
    S.notes.members = view.isolated
      ? { text: 'This node hears no majority of the members it knows (isolated): it declares nobody Down.', tone: 'warn' }
      : null;
  }

  // Another node's HTTP address, linked to its console when it is a plain host:port.
  function httpLink(m) {
    const addr = str(m.http_addr);
    if (!addr) return '—';
    const wildcard = /^(0\.0\.0\.0|\[::\]):/.test(addr);
    if (m.is_self || wildcard || !/^[A-Za-z0-9.\-:[\]]+$/.test(addr)) return addr;
    return h('a', { href: `${location.protocol}//${addr}/`, rel: 'noopener noreferrer', title: 'open this node\'s console' }, addr);
  }

  // ------------------------------------------------------------ supervision

  function shutdownText(s) {
    if (typeof s === 'string') return s;
    if (s && typeof s === 'object' && s.timeout) return `timeout ${fmtDur(s.timeout.timeout_ms)}`;
    return '—';
  }

  function intensity(sup) {
    const b = sup.backoff ? ` · backoff ${fmtDur(sup.backoff.initial_ms)}–${fmtDur(sup.backoff.max_ms)}` : '';
    return `${str(sup.strategy)} · ${sup.restarts_in_window ?? 0}/${sup.max_restarts ?? '?'} in ${fmtDur(sup.period_ms)}${b}`;
  }

  function treeRow(depth, cells, opts) {
    const { path, collapsible } = opts;
    const collapsed = collapsible && S.tree.collapsed.has(path);
    const toggle = collapsible
      ? h('button', {
        type: 'button', class: 'twisty', 'aria-expanded': String(!collapsed), title: collapsed ? 'expand' : 'collapse',
        onclick: () => { toggleSet(S.tree.collapsed, path); kickRender('supervision'); },
      }, collapsed ? '▸' : '▾')
      : h('span', { class: 'twisty-space' });
    return h('div', { class: 'trow', role: 'row' },
      h('span', { class: 'tcell tname', style: { '--depth': String(depth) } }, toggle, cells.name),
      cells.kind, cells.state, cells.restarts, cells.uptime, cells.policy, cells.failure);
  }

  const cell = (content, cls, title) => h('span', { class: `tcell ${cls || ''}`, title: title || null }, content);

  function childNode(c, depth, stats) {
    const restarts = num(c.restarts) ?? 0;
    stats.actors += 1;
    stats.restarts += restarts;
    if (c.state !== 'running') stats.notRunning += 1;
    const sup = c.supervisor;
    const isSup = c.kind === 'supervisor';
    const path = str(c.path) || str(c.id);
    const failure = c.last_failure ? str(c.last_failure) : '';
    const row = treeRow(depth, {
      name: h('span', { class: 'strong', title: path }, str(c.id)),
      kind: cell(str(c.kind), 'muted'),
      state: cell(badge(str(c.state), c.state === 'stopped' && failure ? 'bad' : undefined)),
      restarts: cell(String(restarts), `num ${restarts > 0 ? 'hot' : ''}`),
      uptime: cell(fmtDur(c.uptime_ms), 'num'),
      policy: cell([str(c.restart), ' · ', shutdownText(c.shutdown), sup ? h('div', { class: 'sub' }, intensity(sup)) : null], 'muted small'),
      // `last_failure_unix_ms` (Unix ms) is not served yet; shown once it is.
      failure: cell([failure || '—', failure && num(c.last_failure_unix_ms) != null ? h('span', { class: 'muted', title: fmtStamp(c.last_failure_unix_ms) }, ` · ${fmtAgo(c.last_failure_unix_ms)}`) : null],
        `failure ${failure ? 'tone-text-bad' : 'muted'}`, failure || null),
    }, { path, collapsible: isSup && !!sup && (sup.children || []).length > 0 });
    const li = h('li', { 'data-actor': path, 'data-restarts': String(restarts), 'data-state': str(c.state), 'data-kind': str(c.kind), role: 'treeitem' }, row);
    if (isSup && !sup) li.append(h('div', { class: 'trow note' }, h('span', { class: 'tcell tname muted', style: { '--depth': String(depth + 1) } }, 'supervisor did not answer')));
    if (sup && !S.tree.collapsed.has(path)) li.append(childList(sup.children, depth + 1, stats));
    return li;
  }

  function childList(children, depth, stats) {
    return h('ul', { role: 'group' }, (children || []).map((c) => childNode(c, depth, stats)));
  }

  function renderTree(root) {
    S.tree.last = root;
    const stats = { actors: 0, restarts: 0, notRunning: 0 };
    const path = str(root.path) || 'root';
    // The root supervisor never restarts: when it gives up the node exits.
    const rootRow = treeRow(0, {
      name: h('span', { class: 'strong', title: path }, path),
      kind: cell('supervisor', 'muted'),
      state: cell(badge('running')),
      restarts: cell('0', 'num'),
      uptime: cell(fmtDur(root.uptime_ms), 'num'),
      policy: cell(intensity(root), 'muted small'),
      failure: cell('—', 'muted'),
    }, { path, collapsible: (root.children || []).length > 0 });
    const li = h('li', { 'data-actor': path, 'data-restarts': '0', 'data-state': 'running', 'data-kind': 'supervisor', role: 'treeitem' }, rootRow);
    if (!S.tree.collapsed.has(path)) li.append(childList(root.children, 1, stats));
    const head = h('div', { class: 'trow head', role: 'row' },
      ['Actor', 'Kind', 'State', 'Restarts', 'Uptime', 'Restart · shutdown', 'Last failure'].map((x, i) => cell(x, i === 0 ? 'tname' : '')));
    fill($('supervision-body'), h('div', { class: 'tree', role: 'tree' }, head, h('ul', { role: 'group' }, li)));
    const s = [`${stats.actors} actors`, `${stats.restarts} restarts`];
    if (stats.notRunning) s.push(`${stats.notRunning} not running`);
    $('supervision-summary').textContent = s.join(' · ');
  }

  // Re-render a panel from its last data (after a local UI change).
  function kickRender(name) {
    try {
      if (name === 'supervision' && S.tree.last) renderTree(S.tree.last);
      if (name === 'partitions' && S.parts.data) renderPartitions();
    } catch (e) {
      setPanelMsg(name, `The console failed to show this panel: ${e.message}`, 'bad');
    }
  }

  function toggleSet(set, key) {
    if (set.has(key)) set.delete(key); else set.add(key);
  }

  // ----------------------------------------------------------------- charts

  // One chart per entry: the sample fields it draws (one line each) and
  // how its values read. Counts are per sampling interval; a count axis
  // goes to 2 at least, so that its middle line is a whole number.
  const fmtRate = (v) => (v == null ? '—' : `${v < 10 ? v.toFixed(1) : Math.round(v)}/s`);
  const fmtCount = (v) => (v == null ? '—' : String(Math.round(v)));
  const fmtMs = (v) => (v == null ? '—' : fmtSecs(v / 1000));
  const CHARTS = [
    { key: 'requests', title: 'Requests', lines: [['http_requests_per_s', 'requests']], fmt: fmtRate },
    { key: 'bytes', title: 'File bytes', lines: [['files_written_bytes_per_s', 'in (written)'], ['files_read_bytes_per_s', 'out (read)']], fmt: (v) => (v == null ? '—' : `${fmtBytes(Math.round(v))}/s`) },
    { key: 'latency', title: 'Request latency', lines: [['http_p50_ms', 'p50'], ['http_p99_ms', 'p99']], fmt: fmtMs },
    { key: 'restarts', title: 'Actor restarts', lines: [['restarts', 'per interval']], fmt: fmtCount, whole: true },
    { key: 'membership', title: 'Membership changes', lines: [['membership_changes', 'per interval']], fmt: fmtCount, whole: true },
    { key: 'repairs', title: 'Anti-entropy repairs', lines: [['ae_entries_repaired', 'entries per interval']], fmt: fmtCount, whole: true },
    { key: 'cache', title: 'Edge cache hit rate', lines: [['cache_hit_pct', 'hits']], fmt: (v) => (v == null ? '—' : `${Math.round(v)}%`), max: 100 },
    { key: 'queue', title: 'Job queue depth', lines: [['jobs_queued', 'queued'], ['jobs_in_flight', 'in flight']], fmt: fmtCount, whole: true },
  ];
  // Drawing area of one chart (SVG user units; the chart scales to its box).
  const CH = { w: 340, h: 120, left: 52, right: 8, top: 8, bottom: 18 };

  // 1, 2 or 5 times a power of ten, at least v: the top of a y axis.
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    const f = v / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  function renderCharts() {
    const samples = S.hist.samples;
    const interval = num(S.hist.interval);
    const span = samples.length > 1 ? samples[samples.length - 1].t_unix_ms - samples[0].t_unix_ms : 0;
    $('charts-summary').textContent = `${samples.length} samples${span ? ` over ${fmtDur(span)}` : ''}${interval ? `, one every ${fmtDur(interval)}` : ''} · kept in this node's memory (last ${S.hist.capacity})`;
    fill($('charts-body'), CHARTS.map((def) => lineChart(def, samples, interval)));
  }

  // A line chart of `def.lines` over the samples' times: y from 0 to a
  // round maximum (three labelled grid lines), x from the oldest sample
  // to the newest. A missing value (no request in an interval: no
  // latency) is skipped and its neighbours joined: a lone point between
  // gaps would not show.
  function lineChart(def, samples, interval) {
    const last = samples[samples.length - 1];
    // The latest value a sample has (an interval without requests has no
    // latency: the one before it is shown).
    const latest = (field) => {
      for (let i = samples.length - 1; i >= 0; i -= 1) if (num(samples[i][field]) != null) return samples[i][field];
      return null;
    };
    const now = def.lines.map(([field, label], i) => h('span', { class: 'chart-now' },
      h('i', { class: `swatch s${i}` }), `${label} `, h('strong', null, def.fmt(latest(field)))));
    const head = h('div', { class: 'chart-head' }, h('h3', null, def.title), now);
    const svg = sv('svg', {
      class: 'chart', viewBox: `0 0 ${CH.w} ${CH.h}`, role: 'img', 'aria-label': def.title, 'data-chart': def.key,
    });
    const plotW = CH.w - CH.left - CH.right;
    const plotH = CH.h - CH.top - CH.bottom;
    if (samples.length < 2) {
      svg.append(sv('text', { x: CH.w / 2, y: CH.h / 2, class: 'chart-empty', 'text-anchor': 'middle' },
        `collecting: a point every ${interval ? fmtDur(interval) : '…'}`));
      return h('div', { class: 'chart-card', 'data-chart-card': def.key }, head, svg);
    }
    const t0 = samples[0].t_unix_ms;
    const t1 = last.t_unix_ms;
    const values = def.lines.map(([field]) => samples.map((x) => num(x[field])));
    const peak = niceCeil(Math.max(0, ...values.flat().filter((v) => v != null)));
    const top = def.max ?? (def.whole ? Math.max(2, peak) : peak);
    const x = (t) => CH.left + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * plotW;
    const y = (v) => CH.top + (1 - v / top) * plotH;
    for (const frac of [0, 0.5, 1]) {
      const v = top * frac;
      svg.append(
        sv('line', { class: 'grid-line', x1: CH.left, x2: CH.w - CH.right, y1: y(v), y2: y(v) }),
        sv('text', { class: 'axis', x: CH.left - 4, y: y(v) + 3, 'text-anchor': 'end' }, def.fmt(v)));
    }
    svg.append(
      sv('text', { class: 'axis', x: CH.left, y: CH.h - 4, 'text-anchor': 'start' }, `−${fmtDur(t1 - t0)}`),
      sv('text', { class: 'axis', x: CH.w - CH.right, y: CH.h - 4, 'text-anchor': 'end' }, 'now'));
    values.forEach((series, i) => {
      let d = '';
      let points = 0;
      series.forEach((v, j) => {
        if (v == null) return;
        d += `${points ? 'L' : 'M'}${x(samples[j].t_unix_ms).toFixed(1)},${y(v).toFixed(1)}`;
        points += 1;
      });
      svg.append(sv('path', { class: `line s${i}`, d: d || null, 'data-line': def.lines[i][0], 'data-points': String(points) }));
    });
    return h('div', { class: 'chart-card', 'data-chart-card': def.key }, head, svg);
  }

  // ------------------------------------------------------------- partitions

  // 'bad': a replica is down, an exchange failed, or buckets differ;
  // 'warn': not caught up, unconfirmed, or handing off; else 'ok'.
  // `state` is the worst problem (checked in that order): the map's colour.
  function partitionHealth(p) {
    const replicas = Array.isArray(p.replicas) ? p.replicas : [];
    const why = [];
    let level = 'ok';
    let state = 'ok';
    const note = (w, st) => { why.push(w); if (state === 'ok') state = st; };
    const bad = (w, st) => { level = 'bad'; note(w, st); };
    const warn = (w, st) => { if (level === 'ok') level = 'warn'; note(w, st); };
    const down = replicas.filter((r) => !r.live).length;
    if (down) bad(`${down} replica${down > 1 ? 's' : ''} down`, 'down');
    if (replicas.some((r) => r.last_result === 'failed')) bad('exchange failed', 'failed');
    if (num(p.divergence)) bad(`${p.divergence} bucket${p.divergence > 1 ? 's' : ''} differ`, 'diverged');
    if (p.caught_up === false) warn('not caught up', 'behind');
    if (num(p.diverged_since_ms) != null) warn('unconfirmed', 'unconfirmed');
    if (p.role === 'handing_off') warn('handing off', 'handoff');
    return { level, why, state };
  }

  // Map colours, worst first (style.css: .st-*).
  const PART_STATES = [
    ['down', 'replica down'], ['failed', 'exchange failed'], ['diverged', 'diverged'],
    ['behind', 'not caught up'], ['unconfirmed', 'unconfirmed'], ['handoff', 'handing off'], ['ok', 'healthy'],
  ];
  const MAP_CELL = 12;   // px, one square per partition
  const MAP_GAP = 1;

  function replicaLine(r) {
    const zone = r.zone != null && r.zone !== '' ? ` · zone ${str(r.zone)}` : '';
    return `  ${memberName(r.node_id)}${r.is_self ? ' (this node)' : ''}${zone}${r.live ? '' : ' · DOWN'}`;
  }

  // The partitions as a picture: one square each, in partition order, row
  // by row, coloured by their worst problem; an outline marks a partition
  // whose replicas do not span distinct zones (`spread: false`, when the
  // node reports it). Clicking a square shows that partition in the table.
  function renderPartitionMap(rated) {
    const fig = $('partition-map');
    if (!rated.length) { fill(fig); return; }
    const sorted = [...rated].sort((a, b) => a.p.partition - b.p.partition);
    const cols = Math.ceil(Math.sqrt(sorted.length));
    const rows = Math.ceil(sorted.length / cols);
    const step = MAP_CELL + MAP_GAP;
    const counts = Object.fromEntries(PART_STATES.map(([k]) => [k, 0]));
    let unspread = 0;
    let zoned = false;
    const cells = sorted.map(({ p, health }, i) => {
      counts[health.state] += 1;
      if (typeof p.spread === 'boolean') zoned = true;
      if (p.spread === false) unspread += 1;
      const replicas = Array.isArray(p.replicas) ? p.replicas : [];
      const tip = [
        `Partition ${str(p.partition)}: ${health.level === 'ok' ? 'healthy' : health.why.join(', ')}`,
        `${str(p.role)} · ${str(p.entries ?? '—')} entries`,
        'replicas:',
        ...replicas.map(replicaLine),
        p.spread === false ? 'replicas not spread over distinct zones' : '',
      ].filter(Boolean).join('\n');
      const focused = S.parts.focus === p.partition;
      return sv('rect', {
        x: (i % cols) * step, y: Math.floor(i / cols) * step, width: MAP_CELL, height: MAP_CELL,
        class: `cell st-${health.state}${p.spread === false ? ' unspread' : ''}${focused ? ' focused' : ''}`,
        'data-partition': str(p.partition), 'data-health': health.level, 'data-state': health.state,
        'data-spread': typeof p.spread === 'boolean' ? String(p.spread) : null,
        onclick: () => focusPartition(p.partition),
      }, sv('title', null, tip));
    });
    const width = cols * step - MAP_GAP;
    const height = rows * step - MAP_GAP;
    const legend = h('ul', { class: 'pmap-legend' },
      PART_STATES.map(([k, label]) => h('li', { 'data-state': k },
        sv('svg', { class: 'sw', width: 10, height: 10, 'aria-hidden': 'true' }, sv('rect', { class: `cell st-${k}`, width: 10, height: 10 })),
        `${label} ${counts[k]}`)),
      zoned ? h('li', { 'data-state': 'unspread' },
        sv('svg', { class: 'sw', width: 10, height: 10, 'aria-hidden': 'true' }, sv('rect', { class: 'cell st-ok unspread', x: 1, y: 1, width: 8, height: 8 })),
        `not zone-spread ${unspread}`) : null);
    fill(fig,
      sv('svg', {
        class: 'pmap-grid', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
        'aria-label': `${sorted.length} partitions by replica health`, 'data-cells': String(sorted.length),
      }, cells),
      h('figcaption', null, legend));
  }

  function focusPartition(partition) {
    S.parts.focus = S.parts.focus === partition ? null : partition;
    renderPartitions();
  }

  function renderPartitions() {
    const all = S.parts.data || [];
    const rated = all.map((p) => ({ p, health: partitionHealth(p) }));
    const order = { bad: 0, warn: 1, ok: 2 };
    rated.sort((a, b) => order[a.health.level] - order[b.health.level] || a.p.partition - b.p.partition);
    const counts = { ok: 0, warn: 0, bad: 0 };
    for (const r of rated) counts[r.health.level] += 1;
    const entries = all.reduce((n, p) => n + (num(p.entries) || 0), 0);
    $('partitions-summary').textContent = `${all.length} partitions · ${entries} entries · ${counts.ok} healthy · ${counts.warn} warn · ${counts.bad} bad`;
    // A selected partition this node no longer lists is forgotten.
    if (!rated.some((r) => r.p.partition === S.parts.focus)) S.parts.focus = null;
    renderPartitionMap(rated);
    const focus = S.parts.focus;
    const shown = focus != null ? rated.filter((r) => r.p.partition === focus)
      : S.parts.problemsOnly ? rated.filter((r) => r.health.level !== 'ok') : rated;
    const body = $('partitions-body');
    const unfocus = focus == null ? null : h('p', { class: 'muted small' }, `Partition ${focus} selected on the map. `,
      h('button', { type: 'button', id: 'partitions-unfocus', onclick: () => focusPartition(focus) }, 'Show all'));
    if (!all.length) {
      fill(body, h('p', { class: 'empty' }, 'This node replicates no partition yet.'));
      return;
    }
    if (!shown.length) {
      fill(body, h('p', { class: 'empty tone-text-ok' }, `All ${all.length} partitions healthy: every replica live and confirmed equal.`));
      return;
    }
    const rows = shown.slice(0, MAX_PARTITION_ROWS).map(({ p, health }) => h('tr', { 'data-partition': str(p.partition), 'data-health': health.level, class: p.partition === focus ? 'selected' : null },
      td(str(p.partition), 'num strong'),
      td(badge(health.level === 'ok' ? 'ok' : health.why.join(', '), health.level)),
      td(badge(str(p.role))),
      td(str(p.entries ?? '—'), 'num'),
      td(short(p.root, 10), 'mono', str(p.root)),
      td(p.caught_up ? 'yes' : h('span', { class: 'tone-text-warn' }, 'no')),
      td(str(p.divergence ?? 0), `num ${num(p.divergence) ? 'hot' : ''}`),
      td(ago(p.diverged_since_ms)),
      td(ago(p.confirmed_ms)),
      td(ago(p.last_exchange_ms)),
      td(replicaChips(p.replicas))));
    const more = shown.length > MAX_PARTITION_ROWS
      ? h('p', { class: 'muted small' }, `${shown.length - MAX_PARTITION_ROWS} more not shown.`) : null;
    fill(body, unfocus, table(['#', 'Health', 'Role', 'Entries', 'Root', 'Caught up', 'Diverged buckets', 'Diverged since', 'Confirmed', 'Last exchange', 'Replicas'], rows), more);
  }

  function replicaChips(replicas) {
    return h('span', { class: 'chips' }, (replicas || []).map((r) => {
      const tone = !r.live ? 'bad' : r.is_self ? 'neutral' : TONES[r.last_result] || 'neutral';
      const title = [
        `${str(r.node_id)}.${str(r.generation)}`,
        r.zone != null && r.zone !== '' ? `zone ${str(r.zone)}` : '',
        r.is_self ? 'this node' : `last exchange: ${r.last_result || 'none'} ${fmtAgo(r.last_exchange_ms)}`,
        r.is_self ? '' : `last equal: ${fmtAgo(r.equal_ms)}`,
        r.live ? 'live' : 'DOWN',
      ].filter(Boolean).join('\n');
      return h('span', { class: `chip tone-${tone}`, title, 'data-replica': str(r.node_id) },
        `${memberName(r.node_id)}${r.is_self ? ' (self)' : ''}${r.live ? '' : ' ✕'}`);
    }));
  }

  // ------------------------------------------------------------------ files

  const isInternal = (name) => str(name).startsWith('.hypha/');

  function renderFiles(files, incomplete) {
    const f = S.files;
    const shown = f.internal ? files : files.filter((x) => !isInternal(x.name));
    const hidden = files.length - shown.length;
    const rows = shown.map((x) => {
      const name = str(x.name);
      return h('tr', {
        'data-file': name, class: `clickable ${name === f.selected ? 'selected' : ''}`, tabindex: '0',
        onclick: () => selectFile(name),
        onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); selectFile(name); } },
      },
      td(name, 'mono strong wrap'),
      td(fmtBytes(x.size), 'num', `${x.size} bytes`),
      td(str(x.content_type) || '—', 'muted'),
      td(ago(x.modified_ms)),
      td(labelChips(x.labels)));
    });
    fill($('files-body'), rows.length
      ? table(['Name', 'Size', 'Type', 'Modified', 'Labels'], rows)
      : h('p', { class: 'empty' }, files.length ? 'Only internal files on this page.' : f.prefix ? 'No file with this prefix.' : 'No files stored.'));
    const s = [`${shown.length} shown`];
    if (hidden) s.push(`${hidden} internal hidden`);
    if (f.back.length || f.next) s.push(`page ${f.back.length + 1}`);
    $('files-summary').textContent = s.join(' · ');
    $('files-prev').disabled = f.back.length === 0;
    $('files-next').disabled = !f.next;
    S.notes.files = incomplete ? { text: 'Listing incomplete: some member did not answer.', tone: 'warn' } : null;
  }

  function selectFile(name) {
    const f = S.files;
    f.selected = name;
    f.stat = null;
    f.statErr = '';
    for (const tr of $('files-body').querySelectorAll('tr[data-file]')) {
      tr.classList.toggle('selected', tr.getAttribute('data-file') === name);
    }
    statFile(name).catch(() => {});
  }

  async function statFile(name) {
    const f = S.files;
    if (!has(ROUTE.stat) || !canRead()) return;
    f.statBusy = true;
    renderFileDetail();
    const res = await api('GET', `/v1/stat/${encodePath(name)}`);
    f.statBusy = false;
    if (f.selected !== name) return;
    if (res.ok) {
      f.stat = res.data || {};
      f.degraded = res.headers.get('hypha-read') === 'degraded';
      f.statErr = '';
    } else if (res.status === 401) {
      authLost(res);
      return;
    } else {
      f.statErr = res.status === 404 ? 'not found: deleted since it was listed' : describe(res);
    }
    renderFileDetail();
  }

  function renderFileDetail() {
    const f = S.files;
    const box = $('file-detail');
    if (f.selected == null) {
      fill(box, h('p', { class: 'muted' }, 'Select a file to see its metadata, partition and replicas.'));
      return;
    }
    const head = h('h3', { class: 'mono wrap' }, f.selected);
    if (f.statErr) {
      fill(box, head, h('p', { class: 'tone-text-bad' }, f.statErr));
      return;
    }
    if (!f.stat) {
      fill(box, head, h('p', { class: 'muted' }, f.statBusy ? 'Loading…' : ''));
      return;
    }
    const s = f.stat;
    const item = (k, v, cls) => [h('dt', null, k), h('dd', { class: cls || null }, v)];
    const replicas = Array.isArray(s.replicas) ? s.replicas : [];
    fill(box, head,
      f.degraded ? h('p', null, badge('degraded read: fewer replicas than the read quorum answered', 'warn')) : null,
      h('dl', { class: 'kv' },
        item('Size', `${fmtBytes(s.size)} (${str(s.size)} bytes)`),
        item('Chunks', str(s.chunks ?? '—')),
        item('Partition', str(s.partition ?? '—'), 'mono'),
        item('Replicas', replicas.length
          ? h('span', { class: 'chips' }, replicas.map((id) => h('span', { class: 'chip', title: str(id) }, memberName(id))))
          : '—'),
        item('Type', str(s.content_type) || '—'),
        item('Root', str(s.root) || '—', 'mono wrap small'),
        item('Version', str(s.version) || '—', 'mono small'),
        item('Created', h('span', null, fmtStamp(s.created_ms), ' ', h('span', { class: 'muted' }, `(${fmtAgo(s.created_ms)})`))),
        item('Modified', h('span', null, fmtStamp(s.modified_ms), ' ', h('span', { class: 'muted' }, `(${fmtAgo(s.modified_ms)})`))),
        item('Labels', labelChips(s.labels))),
      has(ROUTE.download) ? downloadControl(f.selected) : null);
  }

  // Open reads: a plain link. With a token: fetched with the Authorization
  // header into a blob (a link cannot carry the header).
  function downloadControl(name) {
    const href = `/v1/files/${encodePath(name)}`;
    const base = str(name).split('/').pop() || 'download';
    if (!S.token) return h('p', null, h('a', { href, download: base, class: 'button' }, 'Download'));
    const msg = h('span', { class: 'inline-msg' });
    const btn = h('button', {
      type: 'button',
      onclick: async () => {
        btn.disabled = true;
        msg.textContent = 'downloading…';
        const res = await api('GET', href, { as: 'blob', timeoutMs: TRANSFER_TIMEOUT_MS });
        btn.disabled = false;
        if (!res.ok) { msg.textContent = describe(res); msg.className = 'inline-msg tone-text-bad'; return; }
        msg.textContent = '';
        const url = URL.createObjectURL(res.data);
        const a = h('a', { href: url, download: base, hidden: true });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      },
    }, 'Download');
    return h('p', null, btn, ' ', msg);
  }

  function parseLabels(text) {
    const out = [];
    for (const part of str(text).split(/[,\n]/)) {
      const t = part.trim();
      if (!t) continue;
      const i = t.indexOf('=');
      if (i <= 0) throw new Error(`label "${t}" is not key=value`);
      out.push([t.slice(0, i).trim(), t.slice(i + 1).trim()]);
    }
    return out;
  }

  async function upload(e) {
    e.preventDefault();
    const msg = $('upload-msg');
    const say = (text, tone) => { msg.textContent = text; msg.className = `inline-msg tone-text-${tone || 'neutral'}`; };
    if (!canWrite()) return say('a write token is needed', 'bad');
    const file = $('upload-file').files[0];
    if (!file) return say('choose a file', 'warn');
    const name = $('upload-name').value.trim() || `${S.files.prefix}${file.name}`;
    if (!name || name.endsWith('/')) return say('give the file a name', 'warn');
    if (S.maxFileBytes != null && file.size > S.maxFileBytes) {
      return say(`too large: this node takes files up to ${fmtBytes(S.maxFileBytes)}`, 'bad');
    }
    let labels;
    try { labels = parseLabels($('upload-labels').value); } catch (err) { return say(err.message, 'warn'); }
    $('upload-submit').disabled = true;
    say(`uploading ${fmtBytes(file.size)}…`);
    const res = await api('PUT', `/v1/files/${encodePath(name)}`, {
      query: labels.map(([k, v]) => ['label', `${k}=${v}`]),
      body: file,
      headers: { 'Content-Type': file.type || 'application/octet-stream' },
      timeoutMs: TRANSFER_TIMEOUT_MS,
    });
    $('upload-submit').disabled = false;
    if (!res.ok) {
      if (res.status === 401) authLost(res);
      return say(describe(res), 'bad');
    }
    const d = res.data || {};
    say(`stored ${str(d.name) || name} on ${d.acks ?? '?'} replicas${d.superseded ? ' (a newer version already existed)' : ''}`, 'ok');
    $('upload-form').reset();
    markDirty('files');
    selectFile(name);
  }

  // ------------------------------------------------------------------- jobs

  function renderQueues() {
    const j = S.jobs;
    const rows = j.queues.map((q) => {
      const name = str(q.queue);
      const select = () => { j.queue = name; j.pinned = true; j.expanded.clear(); renderQueues(); markDirty('jobs'); };
      return h('tr', {
        'data-queue': name, class: `clickable ${name === j.queue ? 'selected' : ''}`, tabindex: '0',
        onclick: select,
        onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(); } },
      },
      td(name, 'strong'),
      td(memberName(q.owner), 'mono', str(q.owner)),
      td(str(q.depth ?? 0), 'num'),
      td(str(q.in_flight ?? 0), 'num'),
      td(str(q.dead_letters ?? 0), `num ${num(q.dead_letters) ? 'hot' : ''}`),
      td(num(q.depth) ? fmtDur(q.oldest_queued_ms) : '—', 'num', 'age of the oldest queued job'),
      td(q.loaded ? 'yes' : h('span', { class: 'tone-text-warn' }, 'loading')));
    });
    fill($('queues-body'), rows.length
      ? table(['Queue', 'Owner', 'Depth', 'In flight', 'Dead', 'Oldest', 'Loaded'], rows)
      : h('p', { class: 'empty' }, 'No queues yet.'));
    const list = $('queue-list');
    fill(list, ...j.queues.map((q) => h('option', { value: str(q.queue) })));
    const sq = $('submit-queue');
    if (!sq.value && j.queue && document.activeElement !== sq) sq.value = j.queue;
  }

  function attemptEnd(end) {
    if (typeof end === 'string') return badge(end, { succeeded: 'ok', running: 'info', timed_out: 'bad', lease_expired: 'warn', node_down: 'warn', cancelled: 'neutral' }[end]);
    if (end && typeof end === 'object' && 'failed' in end) return h('span', null, badge('failed', 'bad'), ' ', str(end.failed));
    return '—';
  }

  function jobDetail(job) {
    const hist = Array.isArray(job.history) ? job.history : [];
    const args = Object.entries(job.args || {});
    return h('div', { class: 'job-detail' },
      h('dl', { class: 'kv' },
        [h('dt', null, 'Id'), h('dd', { class: 'mono' }, str(job.id))],
        [h('dt', null, 'Submitted'), h('dd', null, fmtStamp(job.submitted_ms))],
        job.finished_ms != null ? [h('dt', null, 'Finished'), h('dd', null, `${fmtStamp(job.finished_ms)} (after ${fmtDur(job.finished_ms - job.submitted_ms)})`)] : null,
        [h('dt', null, 'Timeout'), h('dd', null, fmtDur(job.timeout_ms))],
        job.input_file ? [h('dt', null, 'Input file'), h('dd', { class: 'mono' }, str(job.input_file))] : null,
        args.length ? [h('dt', null, 'Args'), h('dd', null, labelChips(job.args))] : null,
        job.error ? [h('dt', null, 'Error'), h('dd', { class: 'tone-text-bad pre' }, str(job.error))] : null,
        job.log ? [h('dt', null, 'Log (stderr)'), h('dd', { class: 'pre mono' }, short(str(job.log), 4000))] : null,
        Array.isArray(job.then) && job.then.length
          ? [h('dt', null, 'Then'), h('dd', null, job.then.map((st) => str(st.kind)).join(' → '),
            job.next ? h('span', { class: 'muted mono' }, ` (next: ${short(str(job.next), 10)})`) : null)]
          : null,
        [h('dt', null, 'Result'), h('dd', { class: 'pre mono' },
          job.result != null ? short(job.result, 4000) : num(job.result_bytes) ? `${fmtBytes(job.result_bytes)} (binary; GET /v1/jobs/{id}/result)` : '—')]),
      hist.length
        ? table(['#', 'Worker', 'Started', 'Ended', 'Took', 'End'], hist.map((a) => h('tr', null,
          td(str(a.number), 'num'),
          td(memberName(a.worker), 'mono', str(a.worker)),
          td(fmtStamp(a.started_ms)),
          td(a.ended_ms != null ? fmtStamp(a.ended_ms) : '—'),
          td(a.ended_ms != null ? fmtDur(a.ended_ms - a.started_ms) : fmtDur(nodeNow() - a.started_ms), 'num'),
          td(attemptEnd(a.end)))), 'inner')
        : h('p', { class: 'muted small' }, 'No attempts yet.'));
  }

  function renderJobs(jobs) {
    const j = S.jobs;
    const body = $('jobs-body');
    if (jobs == null) {
      fill(body, h('p', { class: 'empty' }, j.queues.length ? 'Select a queue.' : 'Jobs appear here once a queue exists.'));
      $('jobs-summary').textContent = `${j.queues.length} queues`;
      return;
    }
    const rows = [];
    for (const job of jobs) {
      const id = str(job.id);
      const open = j.expanded.has(id);
      rows.push(h('tr', {
        'data-job': id, 'data-state': str(job.state), class: `clickable ${open ? 'selected' : ''}`, tabindex: '0', 'aria-expanded': String(open),
        onclick: () => { toggleSet(j.expanded, id); renderJobs(jobs); },
        onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggleSet(j.expanded, id); renderJobs(jobs); } },
      },
      td(short(id, 10), 'mono', id),
      td(str(job.kind)),
      td(badge(str(job.state))),
      td(`${job.attempts ?? 0}/${job.max_attempts ?? '?'}`, `num ${(job.attempts || 0) > 1 ? 'hot' : ''}`),
      td(str(job.priority ?? 0), 'num'),
      td(ago(job.submitted_ms)),
      td(job.finished_ms != null ? fmtDur(job.finished_ms - job.submitted_ms) : '—', 'num'),
      td(job.error ? short(job.error, 80) : job.result != null ? short(job.result, 80) : '', `${job.error ? 'tone-text-bad' : 'muted'} clip`, job.error || job.result || null)));
      if (open) rows.push(h('tr', { class: 'detail-row' }, h('td', { colspan: '8' }, jobDetail(job))));
    }
    fill(body, jobs.length
      ? table(['Job', 'Kind', 'State', 'Attempts', 'Prio', 'Submitted', 'Took', 'Error / result'], rows)
      : h('p', { class: 'empty' }, `No ${j.state ? `${j.state} ` : ''}jobs in ${j.queue}.`));
    const counts = {};
    for (const job of jobs) counts[job.state] = (counts[job.state] || 0) + 1;
    const parts = [`${j.queues.length} queues`, `${j.queue}: ${jobs.length}${jobs.length >= JOB_LIMIT ? '+' : ''} jobs (oldest first)`];
    for (const [s, c] of Object.entries(counts)) parts.push(`${c} ${s}`);
    $('jobs-summary').textContent = parts.join(' · ');
  }

  // ------------------------------------------------------------------- wasm

  // Prometheus text lines `name{labels} value` whose name starts with
  // `prefix`, as {name, labels, value}.
  function parseMetrics(text, prefix) {
    const out = [];
    for (const line of text.split('\n')) {
      if (!line.startsWith(prefix)) continue;
      const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      for (const pair of (m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
      out.push({ name: m[1], labels, value: Number(m[4]) });
    }
    return out;
  }

  function renderWasm(series) {
    const sum = (name, pred) => series
      .filter((x) => x.name === name && (!pred || pred(x.labels)))
      .reduce((a, x) => a + (Number.isFinite(x.value) ? x.value : 0), 0);
    const mean = (name) => {
      const count = sum(`${name}_count`);
      return count ? `${fmtSecs(sum(`${name}_sum`) / count)} mean of ${count}` : '—';
    };
    const quantile = (name, q) => {
      const x = series.find((s) => s.name === name && s.labels.quantile === q);
      return x && Number.isFinite(x.value) ? fmtSecs(x.value) : '—';
    };
    const hits = sum('hypha_wasm_compile_cache_total', (l) => l.result === 'hit');
    const misses = sum('hypha_wasm_compile_cache_total', (l) => l.result === 'miss');
    const rows = [
      ['Compile cache', `${hits} hits, ${misses} misses${hits + misses ? ` (${Math.round(100 * hits / (hits + misses))}% hits)` : ''}`, 'cache'],
      ['Compile', `${mean('hypha_wasm_compile_seconds')}; p50 ${quantile('hypha_wasm_compile_seconds', '0.5')}`, 'compile'],
      ['Instantiate', `${mean('hypha_wasm_instantiate_seconds')}; p50 ${quantile('hypha_wasm_instantiate_seconds', '0.5')}, p99 ${quantile('hypha_wasm_instantiate_seconds', '0.99')}`, 'instantiate'],
      ['Run', `${mean('hypha_wasm_run_seconds')}; p50 ${quantile('hypha_wasm_run_seconds', '0.5')}, p99 ${quantile('hypha_wasm_run_seconds', '0.99')}`, 'run'],
      ['Fuel used', String(sum('hypha_wasm_fuel_used_total')), 'fuel'],
    ].map(([k, v, key]) => h('tr', { 'data-wasm': key }, td(k, 'strong'), td(v, 'num')));
    const failures = series
      .filter((x) => x.name === 'hypha_wasm_failures_total' && x.value > 0)
      .sort((a, b) => b.value - a.value)
      .map((x) => h('tr', { 'data-wasm-failure': str(x.labels.reason), 'data-count': String(x.value) },
        td(badge(str(x.labels.reason), 'bad')), td(String(x.value), 'num')));
    fill($('wasm-body'),
      table(['This node', ''], rows),
      failures.length
        ? table(['Limit kills and failures', 'Attempts'], failures, 'inner')
        : h('p', { class: 'muted small' }, 'No wasm attempt has failed on this node.'));
    $('wasm-summary').textContent = hits + misses ? `${hits + misses} module lookups` : 'no wasm jobs yet';
  }

  function fmtSecs(s) {
    if (!Number.isFinite(s)) return '—';
    if (s < 1e-3) return `${Math.round(s * 1e6)} µs`;
    if (s < 1) return `${(s * 1e3).toFixed(1)} ms`;
    return `${s.toFixed(2)} s`;
  }

  async function submitJob(e) {
    e.preventDefault();
    const msg = $('submit-msg');
    const say = (text, tone) => { msg.textContent = text; msg.className = `inline-msg tone-text-${tone || 'neutral'}`; };
    if (!canWrite()) return say('a write token is needed', 'bad');
    const body = { queue: $('submit-queue').value.trim(), kind: $('submit-kind').value.trim() };
    if (!body.queue || !body.kind) return say('queue and kind are required', 'warn');
    const payload = $('submit-payload').value;
    const file = $('submit-file').value.trim();
    if (payload && file) return say('give a payload or an input file, not both', 'warn');
    if (file) body.file = file; else if (payload) body.payload = payload;
    try {
      const args = parseLabels($('submit-args').value);
      if (args.length) body.args = Object.fromEntries(args);
    } catch (err) { return say(err.message.replace('label', 'arg'), 'warn'); }
    const int = (id, key, min) => {
      const v = $(id).value.trim();
      if (!v) return true;
      const n = Number(v);
      if (!Number.isInteger(n) || (min != null && n < min)) { say(`${key} must be an integer${min != null ? ` ≥ ${min}` : ''}`, 'warn'); return false; }
      body[key] = n;
      return true;
    };
    if (!int('submit-priority', 'priority') || !int('submit-attempts', 'max_attempts', 1) || !int('submit-timeout', 'timeout_ms', 1)) return undefined;
    const key = $('submit-key').value.trim();
    if (key) body.idempotency_key = key;
    $('submit-job').disabled = true;
    say('submitting…');
    const res = await api('POST', '/v1/jobs', {
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' },
    });
    $('submit-job').disabled = false;
    if (!res.ok) {
      if (res.status === 401) authLost(res);
      return say(describe(res), 'bad');
    }
    const job = res.data || {};
    say(`${res.status === 200 ? 'existing job' : 'submitted'} ${short(job.id, 10)} (${str(job.state)})`, 'ok');
    S.jobs.queue = body.queue;
    S.jobs.pinned = true;
    markDirty('jobs');
    return undefined;
  }

  // ------------------------------------------------------------------- wiring

  function wire() {
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const input = $('token');
      const token = input.value.trim();
      input.value = '';
      if (token) applyToken(token);
    });
    $('token-clear').addEventListener('click', () => { $('token').value = ''; applyToken(''); });
    $('try-open').addEventListener('click', () => { tryOpenReads(); });
    $('pause').addEventListener('click', () => {
      S.paused = !S.paused;
      const b = $('pause');
      b.setAttribute('aria-pressed', String(S.paused));
      b.textContent = S.paused ? 'Resume' : 'Pause';
      document.body.toggleAttribute('data-paused', S.paused);
      if (!S.paused) kick('tick');
    });
    $('refresh').addEventListener('click', () => {
      for (const name of PANELS) { const p = panel(name); p.skipUntil = 0; }
      S.netSkipUntil = 0;
      kick('all');
    });
    $('partitions-problems').addEventListener('change', (e) => {
      S.parts.problemsOnly = e.target.checked;
      kickRender('partitions');
    });
    let prefixTimer = 0;
    $('files-prefix').addEventListener('input', (e) => {
      clearTimeout(prefixTimer);
      prefixTimer = setTimeout(() => {
        const f = S.files;
        f.prefix = e.target.value;
        f.cursor = '';
        f.back = [];
        markDirty('files');
      }, 300);
    });
    $('files-internal').addEventListener('change', (e) => { S.files.internal = e.target.checked; markDirty('files'); });
    $('files-next').addEventListener('click', () => {
      const f = S.files;
      if (!f.next) return;
      f.back.push(f.cursor);
      f.cursor = f.next;
      markDirty('files');
    });
    $('files-prev').addEventListener('click', () => {
      const f = S.files;
      if (!f.back.length) return;
      f.cursor = f.back.pop();
      markDirty('files');
    });
    $('jobs-state').addEventListener('change', (e) => { S.jobs.state = e.target.value; markDirty('jobs'); });
    $('upload-form').addEventListener('submit', (e) => { upload(e).catch((err) => { $('upload-msg').textContent = String(err && err.message); }); });
    $('submit-form').addEventListener('submit', (e) => { submitJob(e).catch((err) => { $('submit-msg').textContent = String(err && err.message); }); });
    $('upload-file').addEventListener('change', (e) => {
      const file = e.target.files[0];
      const name = $('upload-name');
      if (file && !name.value) name.placeholder = `${S.files.prefix}${file.name}`;
    });
    // Nothing may reach the browser console: show it instead.
    window.addEventListener('unhandledrejection', (e) => {
      e.preventDefault();
      showNotice(`Console error: ${e.reason && e.reason.message ? e.reason.message : e.reason}`);
    });
    window.addEventListener('error', (e) => {
      e.preventDefault();
      showNotice(`Console error: ${e.message || 'unknown'}`);
    });
  }

  function start() {
    wire();
    S.token = sessionGet(TOKEN_KEY);
    renderAuth();
    kick('tick');
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
