// Wharf dashboard: plain browser JavaScript, no build step, no network beyond the admin port.
// State comes from /events (Server-Sent Events): a `state` replay on connect, then live events.
// Charts are uPlot (served from its npm package by the admin port), drawn only for the projects that
// are open; their history comes from /api/traffic (5 minutes at 1 s, or up to an hour at 10 s).
//
// Per port the charts keep apart what clients saw (the port's own line: requests, errors, the p99 of
// whole requests) and what each instance did (the attempts it took, failed, and their p99), plus the
// retries, rescues and ejections it took to hide failures from clients.
/* global uPlot */

(() => {
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  const withToken = (path) =>
    token ? `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : path;
  // x-wharf-admin: the admin port takes state changes only from callers that can set a header.
  const api = (path, init) =>
    fetch(withToken(path), {
      ...init,
      headers: {
        ...(init?.headers ?? {}),
        'x-wharf-admin': '1',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
    });

  const TIMELINE_MAX = 300;
  /** Projects open at first when there are at most this many (more: all closed, summaries only). */
  const OPEN_BY_DEFAULT = 12;
  /** Timeline events of one kind closer than this collapse into one line. */
  const BURST_MS = 5000;
  const RANGES = { 300: '5 min (1 s)', 900: '15 min (10 s)', 3600: '1 h (10 s)' };
  const PALETTE = [
    '#38bdf8',
    '#a78bfa',
    '#f472b6',
    '#34d399',
    '#fbbf24',
    '#fb7185',
    '#60a5fa',
    '#c084fc',
    '#4ade80',
    '#f97316',
  ];

  /** @type {{version?: number, domain?: string, projects: any[], problems: any[], sources: Record<string, any>}} */
  const model = { projects: [], problems: [], sources: {} };
  /** Latest per-second summary: `project/port` -> port point, `project/port/instance` -> instance point. */
  const live = { ports: new Map(), instances: new Map() };
  /** History of the open projects: project -> { times, ports: Map, instances: Map }. */
  const charted = new Map();
  const timeline = [];
  const view = {
    q: params.get('q') ?? '',
    state: params.get('state') ?? 'all',
    range: Number(params.get('range')) in RANGES ? Number(params.get('range')) : 300,
  };
  /** Projects the user opened or closed (otherwise: OPEN_BY_DEFAULT decides). */
  const toggled = new Map();
  let demo = null; // { instances: [...], projects: [...] } when the demo control API is there
  let structureKey = '';
  const cards = new Map(); // project -> { el, head, body, ports: Map(port -> portView) }
  const flashing = new Set();
  let timelineDirty = true;

  const $ = (id) => document.getElementById(id);
  const esc = (s) =>
    String(s ?? '').replace(
      /[&<>"']/g,
      (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
    );
  const keyOf = (...parts) => parts.join('/');
  const setText = (el, text) => {
    if (el && el.textContent !== text) el.textContent = text;
  };
  const setHtml = (el, html) => {
    if (el && el.dataset.html !== html) {
      el.innerHTML = html;
      el.dataset.html = html;
    }
  };

  // ---------- wall mode ----------
  const wallBtn = $('wall-toggle');
  function setWall(on) {
    document.documentElement.classList.toggle('wall', on);
    // A wall display is dark whatever the system says; charts pick their colours up on rebuild.
    document.documentElement.classList.toggle('force-dark', on);
    wallBtn.setAttribute('aria-pressed', String(on));
    try {
      localStorage.setItem('wharf.wall', on ? '1' : '0');
    } catch {}
    for (const c of cards.values()) for (const pv of c.ports.values()) rebuildCharts(pv);
  }
  wallBtn.addEventListener('click', () => setWall(!document.documentElement.classList.contains('wall')));

  // ---------- formatting ----------
  function fmtRate(x) {
    if (x == null) return '–';
    if (x >= 100) return x.toFixed(0);
    if (x >= 10) return x.toFixed(1);
    return x.toFixed(2).replace(/\.?0+$/, '') || '0';
  }
  function fmtMs(x) {
    if (x == null) return '–';
    if (x === 0) return '0';
    if (x >= 1000) return `${(x / 1000).toFixed(x >= 10000 ? 0 : 1)} s`;
    if (x >= 10) return `${x.toFixed(0)} ms`;
    return `${x.toFixed(1)} ms`;
  }
  function fmtPct(x) {
    if (x == null) return '–';
    const p = x * 100;
    return p === 0 ? '0%' : p < 1 ? `${p.toFixed(2)}%` : `${p.toFixed(1)}%`;
  }
  function fmtAgo(ms) {
    if (!ms) return '';
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`;
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
  }
  const fmtTime = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });

  /** `ejected`: unhealthy and out of rotation (passive evidence or failed probes), until it rises. */
  function displayState(inst) {
    if (inst.state === 'unhealthy' && inst.ejected) return 'ejected';
    return inst.state;
  }

  // ---------- filters (kept in the URL, so a filtered view can be shared) ----------
  function syncUrl() {
    const p = new URLSearchParams(location.search);
    for (const [k, v, d] of [
      ['q', view.q, ''],
      ['state', view.state, 'all'],
      ['range', String(view.range), '300'],
    ]) {
      if (v === d) p.delete(k);
      else p.set(k, v);
    }
    const qs = p.toString();
    window.history.replaceState(null, '', `${location.pathname}${qs ? `?${qs}` : ''}`);
  }

  function stateMatches(inst) {
    const st = displayState(inst);
    switch (view.state) {
      case 'all':
        return true;
      case 'problems':
        return st !== 'healthy';
      case 'unhealthy':
        return st === 'unhealthy' || st === 'ejected';
      default:
        return st === view.state;
    }
  }

  /** Whether a project passes the search and the state filter. */
  function projectShown(p) {
    const q = view.q.trim().toLowerCase();
    if (q) {
      const hit =
        p.name.toLowerCase().includes(q) ||
        p.ports.some((port) => port.instances.some((i) => i.name.toLowerCase().includes(q)));
      if (!hit) return false;
    }
    if (view.state === 'all') return true;
    return p.ports.some((port) => port.instances.some(stateMatches));
  }

  function isOpen(name) {
    if (toggled.has(name)) return toggled.get(name);
    return model.projects.length <= OPEN_BY_DEFAULT || view.state !== 'all' || view.q.trim() !== '';
  }

  // ---------- model updates ----------
  function findInstance(project, port, instance, create) {
    let p = model.projects.find((x) => x.name === project);
    if (!p) {
      if (!create) return null;
      p = { name: project, ports: [] };
      model.projects.push(p);
      model.projects.sort((a, b) => (a.name < b.name ? -1 : 1));
    }
    let q = p.ports.find((x) => x.name === port);
    if (!q) {
      if (!create) return null;
      q = { name: port, instances: [] };
      p.ports.push(q);
    }
    let i = q.instances.find((x) => x.name === instance);
    if (!i && create) {
      i = { name: instance, state: 'pending', reason: '', ejected: false, draining: false, since: null };
      q.instances.push(i);
      q.instances.sort((a, b) => (a.name < b.name ? -1 : 1));
    }
    return i;
  }

  function applyState(s) {
    model.version = s.version;
    if (s.domain) model.domain = s.domain;
    model.projects = (s.projects ?? []).map((p) => ({
      ...p,
      ports: (p.ports ?? []).map((q) => ({ ...q, instances: [...(q.instances ?? [])] })),
    }));
    if (s.problems) model.problems = s.problems;
    if (s.sources) {
      model.sources = {};
      for (const src of s.sources) model.sources[src.source] = src;
    }
  }

  function onHealth(e) {
    const inst = findInstance(e.project, e.port, e.instance, true);
    const before = displayState(inst);
    inst.state = inst.draining && e.to !== 'unhealthy' ? 'draining' : e.to;
    inst.reason = e.reason;
    inst.ejected = e.ejected;
    inst.since = e.time;
    if (e.address) inst.address = e.address;
    if (displayState(inst) !== before) flashing.add(keyOf(e.project, e.port, e.instance));
  }

  function addTimeline(e, fresh) {
    if (e.type === 'upstream') {
      // A burst of retries and rescues grows while it lasts: replace the entry with its id.
      const at = timeline.findIndex((x) => x.type === 'upstream' && x.id === e.id);
      if (at >= 0) timeline.splice(at, 1);
    }
    timeline.unshift({ ...e, fresh });
    timeline.sort((a, b) => b.time - a.time);
    if (timeline.length > TIMELINE_MAX) timeline.length = TIMELINE_MAX;
    timelineDirty = true;
  }

  /** Coalesces calls within `ms` into one, run at the end. */
  function debounce(fn, ms) {
    let t = null;
    return () => {
      clearTimeout(t);
      t = setTimeout(fn, ms);
    };
  }

  const refetchProjects = debounce(async () => {
    try {
      const r = await api('/api/projects');
      if (!r.ok) return;
      const body = await r.json();
      applyState({ ...body, problems: undefined, sources: undefined, domain: body.domain ?? model.domain });
      schedule();
    } catch {}
  }, 200);

  // ---------- traffic ----------
  function onTraffic(e) {
    live.ports.clear();
    live.instances.clear();
    for (const p of e.ports ?? []) live.ports.set(keyOf(p.project, p.port), p);
    for (const p of e.points ?? []) live.instances.set(keyOf(p.project, p.port, p.instance), p);
    if (view.range !== 300) return; // the 10 s views are refetched (refreshCoarse)
    const t = e.time / 1000;
    for (const [project, h] of charted) {
      if (h.step !== 1 || !h.times.length || t <= h.times[h.times.length - 1]) continue;
      h.times.push(t);
      for (const [k, s] of h.ports) {
        const p = live.ports.get(k);
        s.rps.push(p ? p.rps : 0);
        s.err.push(p?.rps ? p.errorRate * 100 : null);
        s.p99.push(p ? p.p99Ms : null);
        s.retries.push(p ? p.retries : 0);
        s.rescues.push(p ? p.rescues : 0);
        s.ejections.push(p ? p.ejections : 0);
      }
      for (const [k, s] of h.instances) {
        const p = live.instances.get(k);
        s.rps.push(p ? p.rps : 0);
        s.err.push(p?.rps ? p.errorRate * 100 : null);
        s.p99.push(p ? p.p99Ms : null);
      }
      // Keys that appeared since the fetch: a series of their own from now on.
      for (const [k, p] of live.ports)
        if (p.project === project && !h.ports.has(k)) h.ports.set(k, blankPort(h.times.length, p));
      for (const [k, p] of live.instances)
        if (p.project === project && !h.instances.has(k))
          h.instances.set(k, blankInstance(h.times.length, p));
      trim(h, 300);
    }
  }

  function blankInstance(n, last) {
    const s = { rps: new Array(n).fill(null), err: new Array(n).fill(null), p99: new Array(n).fill(null) };
    if (last) {
      s.rps[n - 1] = last.rps;
      s.err[n - 1] = last.rps ? last.errorRate * 100 : null;
      s.p99[n - 1] = last.p99Ms;
    }
    return s;
  }
  function blankPort(n, last) {
    const s = {
      ...blankInstance(n, last),
      retries: new Array(n).fill(null),
      rescues: new Array(n).fill(null),
      ejections: new Array(n).fill(null),
    };
    if (last) {
      s.retries[n - 1] = last.retries;
      s.rescues[n - 1] = last.rescues;
      s.ejections[n - 1] = last.ejections;
    }
    return s;
  }
  function trim(h, max) {
    const extra = h.times.length - max;
    if (extra <= 0) return;
    h.times.splice(0, extra);
    for (const s of [...h.ports.values(), ...h.instances.values()])
      for (const k of Object.keys(s)) s[k].splice(0, extra);
  }

  /** Fetches the history of `projects` for the current range and files it per project. */
  async function loadHistory(projects) {
    if (projects.length === 0) return;
    const range = view.range;
    let body;
    try {
      const r = await api(
        `/api/traffic?range=${range}&project=${projects.map(encodeURIComponent).join(',')}`,
      );
      if (!r.ok) return;
      body = await r.json();
    } catch {
      return;
    }
    if (range !== view.range) return; // the range changed meanwhile
    const times = Array.from(
      { length: body.length },
      (_, i) => body.end / 1000 - (body.length - 1 - i) * body.step,
    );
    const pct = (a) => a.map((x) => (x == null ? null : x * 100));
    for (const name of projects) {
      const h = { step: body.step, times: [...times], ports: new Map(), instances: new Map() };
      for (const s of body.ports)
        if (s.project === name)
          h.ports.set(keyOf(s.project, s.port), {
            rps: s.rps,
            err: pct(s.errorRate),
            p99: s.p99Ms,
            retries: s.retries,
            rescues: s.rescues,
            ejections: s.ejections,
          });
      for (const s of body.instances)
        if (s.project === name)
          h.instances.set(keyOf(s.project, s.port, s.instance), {
            rps: s.rps,
            err: pct(s.errorRate),
            p99: s.p99Ms,
          });
      charted.set(name, h);
      const c = cards.get(name);
      if (c) for (const pv of c.ports.values()) rebuildCharts(pv);
    }
  }

  // The 10 s views: fetch again every 10 s (the per-second stream is the 5-minute view's).
  setInterval(() => {
    if (view.range === 300) return;
    loadHistory([...charted.keys()]);
  }, 10_000);

  // ---------- rendering ----------
  let scheduled = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      render();
    });
  }

  let firstProjectsPaint = false;
  function render() {
    renderStats();
    renderProjects();
    renderProblems();
    if (timelineDirty) renderTimeline();
    if (!firstProjectsPaint && model.projects.length > 0) {
      firstProjectsPaint = true;
      // The browser test reads this: time from navigation to the first projects on screen.
      performance.mark('wharf-projects-rendered');
    }
  }

  function renderApiserverButton() {
    const btn = $('apiserver-toggle');
    const a = demo?.apiserver;
    btn.hidden = !a;
    if (!a) return;
    setText(btn, a.up ? 'Apiserver outage' : 'Restore apiserver');
    btn.setAttribute('aria-pressed', String(!a.up));
  }
  $('apiserver-toggle').addEventListener('click', async (ev) => {
    const btn = ev.currentTarget;
    const down = demo?.apiserver?.up;
    btn.disabled = true;
    try {
      const r = await api(`/api/demo/apiserver/${down ? 'down' : 'up'}`, { method: 'POST' });
      if (r.ok) demo = await r.json();
    } catch {}
    btn.disabled = false;
    addTimeline(
      { type: 'demo', time: Date.now(), action: down ? 'apiserver down' : 'apiserver up', target: '' },
      true,
    );
    schedule();
  });

  function renderStats() {
    renderApiserverButton();
    let total = 0;
    let healthy = 0;
    let bad = 0;
    for (const p of model.projects)
      for (const q of p.ports)
        for (const i of q.instances) {
          total++;
          if (i.state === 'healthy') healthy++;
          if (i.state === 'unhealthy') bad++;
        }
    let rps = 0;
    let retries = 0;
    for (const p of live.ports.values()) {
      rps += p.windowRps;
      retries += p.windowRetries + p.windowRescues;
    }
    const src = Object.values(model.sources);
    const srcHtml = src
      .map(
        (s) =>
          `<div class="stat ${s.state === 'synced' ? 'ok' : 'bad'}" title="${esc(s.reason ?? '')}"><b>${esc(s.state)}</b><small>${esc(s.source)}</small></div>`,
      )
      .join('');
    setHtml(
      $('stats'),
      `<div class="stat"><b>${model.projects.length}</b><small>projects</small></div>` +
        `<div class="stat ok"><b data-testid="healthy-count">${healthy}/${total}</b><small>healthy</small></div>` +
        `<div class="stat ${bad ? 'bad' : ''}"><b>${bad}</b><small>unhealthy</small></div>` +
        `<div class="stat"><b>${fmtRate(rps)}</b><small>req/s</small></div>` +
        `<div class="stat ${retries ? 'warn' : ''}" title="retries and rescues per second (10 s)"><b>${fmtRate(retries)}</b><small>retries/s</small></div>` +
        (model.version != null
          ? `<div class="stat"><b>v${esc(model.version)}</b><small>route table</small></div>`
          : '') +
        srcHtml,
    );
  }

  function renderProjects() {
    const container = $('projects');
    const key = model.projects.map((p) => `${p.name}:${p.ports.map((q) => q.name).join(',')}`).join('|');
    $('projects-empty').hidden = model.projects.length > 0;
    if (key !== structureKey) {
      structureKey = key;
      const keep = new Set(model.projects.map((p) => p.name));
      for (const [name, c] of cards) {
        if (keep.has(name) && c.portsKey === portsKey(model.projects.find((p) => p.name === name))) continue;
        closeCard(c);
        c.el.remove();
        cards.delete(name);
      }
      let prev = null;
      for (const p of model.projects) {
        let c = cards.get(p.name);
        if (!c) {
          c = buildCard(p);
          cards.set(p.name, c);
        }
        const want = prev ? prev.nextSibling : container.querySelector('.project');
        if (want !== c.el) container.insertBefore(c.el, want ?? null);
        prev = c.el;
      }
    }
    let shown = 0;
    const toLoad = [];
    for (const p of model.projects) {
      const c = cards.get(p.name);
      const visible = projectShown(p);
      if (c.el.hidden === visible) c.el.hidden = !visible;
      if (!visible) continue;
      shown++;
      const open = isOpen(p.name);
      if (open && !c.open) {
        openCard(c, p);
        if (!charted.has(p.name)) toLoad.push(p.name);
      } else if (!open && c.open) closeCard(c);
      renderHead(c, p);
      if (c.open) renderBody(c, p);
    }
    loadHistory(toLoad);
    setText(
      $('shown'),
      `${shown} of ${model.projects.length} project${model.projects.length === 1 ? '' : 's'}`,
    );
    $('no-match').hidden = shown > 0 || model.projects.length === 0;
    flashing.clear();
  }

  const portsKey = (p) => (p?.ports ?? []).map((q) => q.name).join(',');

  function buildCard(p) {
    const el = document.createElement('article');
    el.className = 'project';
    el.dataset.project = p.name;
    const tags = [];
    if (p.origin) tags.push(`<span class="tag" title="declared in">${esc(p.origin)}</span>`);
    if (p.affinity && p.affinity !== 'none')
      tags.push(`<span class="tag">affinity: ${esc(p.affinity)}</span>`);
    if (p.healthPath) tags.push(`<span class="tag">health: ${esc(p.healthPath)}</span>`);
    el.innerHTML =
      `<header><button type="button" class="toggle" aria-expanded="false" title="show or hide charts and instances"><span class="chev" aria-hidden="true">▸</span><h2>${esc(p.name)}</h2></button>` +
      `<span class="health-sum"></span><span class="proj-sum"></span>${tags.join('')}<span class="spacer"></span><span class="demo-scale"></span></header>` +
      '<div class="body"></div>';
    const c = {
      name: p.name,
      el,
      portsKey: portsKey(p),
      head: el.querySelector('header'),
      toggle: el.querySelector('.toggle'),
      health: el.querySelector('.health-sum'),
      sum: el.querySelector('.proj-sum'),
      scale: el.querySelector('.demo-scale'),
      body: el.querySelector('.body'),
      ports: new Map(),
      open: false,
    };
    c.toggle.addEventListener('click', () => {
      toggled.set(p.name, !c.open);
      schedule();
    });
    return c;
  }

  function openCard(c, p) {
    c.open = true;
    c.el.classList.add('open');
    c.toggle.setAttribute('aria-expanded', 'true');
    for (const q of p.ports) {
      const sec = document.createElement('section');
      sec.className = 'port';
      sec.dataset.port = q.name;
      const host = model.domain ? `${q.name}.${p.name}.${model.domain}` : '';
      sec.innerHTML =
        `<div class="port-head"><h3>${esc(q.name)}</h3>${host ? `<span class="host">${esc(host)}</span>` : ''}${q.protocol ? `<span class="tag proto" title="the protocol Wharf speaks to the instances (auto: the client's)">to instances: ${esc(q.protocol)}</span>` : ''}<span class="sum"></span></div>` +
        `<div class="charts">${CHARTS.map((ch) => `<div class="chart" data-chart="${ch.kind}"><h4 title="${esc(ch.help)}">${ch.title}<span></span></h4><div class="plot"></div></div>`).join('')}</div>` +
        `<table class="instances"><colgroup><col class="c-name"><col class="c-state"><col class="c-why"><col class="c-since"><col class="c-num"><col class="c-num"><col class="c-num"><col class="c-act"></colgroup><thead><tr><th>instance</th><th>state</th><th>why</th><th>since</th><th class="num" title="attempts per second this instance took">att/s</th><th class="num" title="attempts that failed: 5xx, connection errors, timeouts, rescues">failed</th><th class="num" title="p99 of this instance's attempts (to response headers)">p99</th><th class="actions"></th></tr></thead><tbody></tbody></table>`;
      c.body.appendChild(sec);
      const pv = {
        project: p.name,
        port: q.name,
        el: sec,
        tbody: sec.querySelector('tbody'),
        sum: sec.querySelector('.sum'),
        charts: [...sec.querySelectorAll('.chart')].map((el, i) => ({
          ...CHARTS[i],
          holder: el.querySelector('.plot'),
          label: el.querySelector('h4 span'),
          plot: null,
        })),
        chartKey: '',
      };
      c.ports.set(q.name, pv);
    }
  }

  function closeCard(c) {
    c.open = false;
    c.el.classList.remove('open');
    c.toggle.setAttribute('aria-expanded', 'false');
    for (const pv of c.ports.values()) for (const ch of pv.charts) ch.plot?.destroy();
    c.ports.clear();
    c.body.textContent = '';
    charted.delete(c.name);
  }

  /** The project's one-line summary, open or closed: health, then what its clients see. */
  function renderHead(c, p) {
    let total = 0;
    let healthy = 0;
    const worst = {};
    for (const q of p.ports)
      for (const i of q.instances) {
        total++;
        const st = displayState(i);
        if (st === 'healthy') healthy++;
        else worst[st] = (worst[st] ?? 0) + 1;
      }
    const bad = Object.entries(worst)
      .map(([st, n]) => `<span class="mini" data-state="${st}">${n} ${st}</span>`)
      .join('');
    setHtml(
      c.health,
      `<span class="mini" data-state="${healthy === total ? 'healthy' : 'partial'}">${healthy}/${total} healthy</span>${bad}`,
    );
    let rps = 0;
    let errs = 0;
    let p99 = null;
    let moved = 0;
    for (const q of p.ports) {
      const lp = live.ports.get(keyOf(p.name, q.name));
      if (!lp) continue;
      rps += lp.windowRps;
      errs += lp.windowRps * lp.windowErrorRate;
      moved += lp.windowRetries + lp.windowRescues;
      if (lp.windowP99Ms != null) p99 = Math.max(p99 ?? 0, lp.windowP99Ms);
    }
    setText(
      c.sum,
      `${fmtRate(rps)} req/s · ${rps ? fmtPct(errs / rps) : '0%'} errors · p99 ${fmtMs(p99)}${moved ? ` · ${fmtRate(moved)} retries/s` : ''}`,
    );
    c.sum.classList.toggle('warn', moved > 0);
    setHtml(c.scale, scaleControls(p.name));
  }

  function renderBody(c, p) {
    for (const q of p.ports) {
      const pv = c.ports.get(q.name);
      if (!pv) continue;
      const rows = q.instances.filter((i) => view.state === 'all' || stateMatches(i));
      patchRows(
        pv.tbody,
        rows.map((i) => instanceRow(p, q, i, q.instances.indexOf(i))),
      );
      updateCharts(pv);
    }
  }

  function instanceColor(idx) {
    return PALETTE[idx % PALETTE.length];
  }

  function instanceRow(p, q, i, idx) {
    const k = keyOf(p.name, q.name, i.name);
    const st = displayState(i);
    const last = live.instances.get(k);
    const d = demoInstance(p.name, i.name);
    const err = last?.windowErrorRate ?? null;
    const reason = i.reason || (i.draining ? 'terminating: serving pinned and sticky requests only' : '');
    const stateTitle =
      st === 'ejected'
        ? 'unhealthy and out of rotation: it failed live requests or probes; it returns after passing probes `health-rise` times'
        : st === 'unhealthy'
          ? 'failing its active probes: no new requests'
          : st === 'pending'
            ? 'not probed yet: used only when no instance is healthy'
            : st === 'draining'
              ? 'terminating: pinned and sticky requests only'
              : 'passing its probes';
    return {
      key: i.name,
      attrs: { 'data-instance': i.name, 'data-state': i.state, 'data-display-state': st },
      cells: [
        `<span class="dot" style="background:${instanceColor(idx)}"></span><span class="name">${esc(i.name)}</span>` +
          (d && d.status !== 'running'
            ? `<span class="demo-tag" data-status="${esc(d.status)}">${esc(d.status)}</span>`
            : '') +
          `<div class="addr">${esc(i.address ?? '')}</div>` +
          (reason ? `<div class="why-inline">${esc(reason)}</div>` : ''),
        `<span class="pill${flashing.has(k) ? ' flash' : ''}" data-state="${esc(st)}" title="${esc(stateTitle)}">${esc(st)}</span>`,
        esc(reason),
        fmtAgo(i.since),
        last ? fmtRate(last.windowRps) : '–',
        last?.windowRps ? fmtPct(err) : '–',
        last ? fmtMs(last.windowP99Ms) : '–',
        d ? demoButtons(p.name, i.name, d.status) : '',
      ],
      classes: ['', '', 'reason', 'since', 'num', `num${err > 0.05 ? ' err-hi' : ''}`, 'num', 'actions'],
      since: i.since ?? '',
    };
  }

  /** Update rows cell by cell, so a button under the pointer survives the once-a-second refresh. */
  function patchRows(tbody, rows) {
    const existing = new Map([...tbody.rows].map((tr) => [tr.dataset.instance, tr]));
    let prev = null;
    for (const r of rows) {
      let tr = existing.get(r.key);
      existing.delete(r.key);
      if (!tr) {
        tr = document.createElement('tr');
        for (let c = 0; c < r.cells.length; c++) tr.appendChild(document.createElement('td'));
      }
      for (const [a, val] of Object.entries(r.attrs)) if (tr.getAttribute(a) !== val) tr.setAttribute(a, val);
      r.cells.forEach((html, c) => {
        const td = tr.cells[c];
        if (td.className !== r.classes[c]) td.className = r.classes[c];
        setHtml(td, html);
      });
      tr.cells[3].dataset.since = String(r.since);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const tr of existing.values()) tr.remove();
  }

  // ---------- charts ----------
  const CHARTS = [
    {
      kind: 'rps',
      title: 'req/s',
      help: 'Bold: requests per second clients sent to this port. Thin: attempts per second each instance took (retries included).',
    },
    {
      kind: 'err',
      title: 'errors %',
      help: 'Bold: requests answered 5xx. Thin: attempts that failed on each instance (a retry may still have saved the request).',
    },
    {
      kind: 'p99',
      title: 'p99 latency',
      help: "Bold: p99 of whole requests as clients saw them. Thin: p99 of each instance's own attempts.",
    },
    {
      kind: 'moves',
      title: 'retries · rescues · ejections',
      help: 'Per second: attempts beyond the first; attempts moved off an instance ejected while they waited; ejections.',
    },
  ];
  const MOVES = [
    { key: 'retries', label: 'retries', color: '#fbbf24' },
    { key: 'rescues', label: 'rescues', color: '#f97316' },
    { key: 'ejections', label: 'ejections', color: '#ef4444' },
  ];

  function portInstanceNames(pv) {
    const p = model.projects.find((x) => x.name === pv.project);
    const q = p?.ports.find((x) => x.name === pv.port);
    return (q?.instances ?? []).map((i) => i.name);
  }

  function rebuildCharts(pv) {
    pv.chartKey = '';
    updateCharts(pv);
  }

  // uPlot loads asynchronously (index.html): until it is there, charts wait and the rest renders.
  if (!window.uPlot)
    $('uplot-js')?.addEventListener('load', () => {
      for (const c of cards.values()) for (const pv of c.ports.values()) rebuildCharts(pv);
    });

  function updateCharts(pv) {
    const h = window.uPlot ? charted.get(pv.project) : undefined;
    const names = portInstanceNames(pv);
    const ck = `${names.join('\u0000')}|${h ? `${h.step}:${h.times[0] ?? ''}` : 'none'}`;
    const data = (kind) => chartData(pv, h, kind, names);
    if (ck !== pv.chartKey) {
      pv.chartKey = ck;
      for (const c of pv.charts) {
        c.plot?.destroy();
        c.plot = null;
        if (!h) continue;
        c.plot = new uPlot(
          chartOpts(c.kind, names, c.holder.clientWidth || 300, c.holder.clientHeight || 92, h.step),
          data(c.kind),
          c.holder,
        );
      }
    } else if (h) {
      for (const c of pv.charts) c.plot?.setData(data(c.kind));
    }
    const lp = live.ports.get(keyOf(pv.project, pv.port));
    setText(
      pv.sum,
      lp
        ? `clients: ${fmtRate(lp.windowRps)} req/s · ${lp.windowRps ? fmtPct(lp.windowErrorRate) : '0%'} errors · p99 ${fmtMs(lp.windowP99Ms)} · ${fmtRate(lp.windowRetries)} retries/s · ${fmtRate(lp.windowRescues)} rescues/s · ${lp.windowEjections} ejections (10 s)`
        : 'clients: no requests in the last 10 s',
    );
    setText(pv.charts[0].label, lp ? fmtRate(lp.windowRps) : '–');
    setText(pv.charts[1].label, lp?.windowRps ? fmtPct(lp.windowErrorRate) : '–');
    setText(pv.charts[2].label, fmtMs(lp?.windowP99Ms ?? null));
    setText(pv.charts[3].label, lp ? fmtRate(lp.windowRetries + lp.windowRescues) : '–');
  }

  function chartData(pv, h, kind, names) {
    const n = h.times.length;
    const empty = () => new Array(n).fill(null);
    const port = h.ports.get(keyOf(pv.project, pv.port));
    if (kind === 'moves') return [h.times, ...MOVES.map((m) => port?.[m.key] ?? empty())];
    const data = [h.times, port?.[kind] ?? empty()];
    for (const name of names) data.push(h.instances.get(keyOf(pv.project, pv.port, name))?.[kind] ?? empty());
    return data;
  }

  const valueFormat = (kind) =>
    kind === 'p99' ? fmtMs : kind === 'err' ? (x) => (x == null ? '–' : `${fmtRate(x)}%`) : fmtRate;

  /** A tooltip with every series' value at the cursor (uPlot's legend is too big for small charts). */
  function tooltip(kind) {
    const fmt = valueFormat(kind);
    let tip;
    return {
      hooks: {
        init: [
          (u) => {
            tip = document.createElement('div');
            tip.className = 'u-tip';
            tip.hidden = true;
            u.over.appendChild(tip);
          },
        ],
        setCursor: [
          (u) => {
            const idx = u.cursor.idx;
            if (idx == null || u.cursor.left < 0) {
              tip.hidden = true;
              return;
            }
            const t = u.data[0][idx];
            const rows = u.series
              .slice(1)
              .map((s, i) =>
                s.show === false
                  ? ''
                  : `<div><i style="background:${s._stroke ?? s.stroke}"></i>${esc(s.label)}<b>${esc(fmt(u.data[i + 1][idx]))}</b></div>`,
              )
              .join('');
            tip.innerHTML = `<time>${esc(fmtTime(t * 1000))}</time>${rows}`;
            tip.hidden = false;
            const left = u.cursor.left;
            const flip = left > u.over.clientWidth / 2;
            tip.style.left = flip ? '' : `${left + 10}px`;
            tip.style.right = flip ? `${u.over.clientWidth - left + 10}px` : '';
          },
        ],
      },
    };
  }

  function chartOpts(kind, names, width, height, step) {
    const dark =
      getComputedStyle(document.documentElement).getPropertyValue('color-scheme').trim() !== 'light';
    const axisColor = dark ? '#8b9ab5' : '#5b6b84';
    const grid = dark ? '#1e2a44' : '#e5ebf3';
    const strong = dark ? '#e2e8f0' : '#0f172a';
    const fmt = valueFormat(kind);
    const series =
      kind === 'moves'
        ? MOVES.map((m) => ({ label: m.label, stroke: m.color, width: 1.6, points: { show: false } }))
        : [
            {
              label: kind === 'p99' || kind === 'err' ? 'clients' : 'clients (requests)',
              stroke: strong,
              width: 2.4,
              points: { show: false },
            },
            ...names.map((n, idx) => ({
              label: n,
              stroke: instanceColor(idx),
              width: 1.3,
              points: { show: false },
            })),
          ];
    return {
      width,
      height,
      legend: { show: false },
      plugins: [tooltip(kind)],
      cursor: { drag: { x: false, y: false }, points: { size: 5 } },
      padding: [6, 14, 0, 0],
      scales: {
        x: { time: true },
        y: {
          range: (_u, _min, max) => [
            0,
            kind === 'err'
              ? Math.max(5, Math.min(100, max * 1.15))
              : Math.max(kind === 'p99' ? 5 : 1, max * 1.15),
          ],
        },
      },
      axes: [
        {
          stroke: axisColor,
          grid: { stroke: grid, width: 1 },
          ticks: { show: false },
          size: 22,
          font: '11px system-ui',
          space: step > 1 ? 90 : 70,
        },
        {
          stroke: axisColor,
          grid: { stroke: grid, width: 1 },
          ticks: { show: false },
          size: 46,
          font: '11px system-ui',
          values: (_u, vals) => vals.map((v) => (kind === 'err' ? `${v}%` : fmt(v))),
          space: 24,
        },
      ],
      series: [{}, ...series.map((s) => ({ spanGaps: step > 1, ...s }))],
    };
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const c of cards.values())
        for (const pv of c.ports.values())
          for (const ch of pv.charts)
            ch.plot?.setSize({ width: ch.holder.clientWidth, height: ch.holder.clientHeight });
    }, 100);
  });

  function renderProblems() {
    const list = model.problems;
    const count = $('problems-count');
    setText(count, String(list.length));
    count.classList.toggle('has', list.length > 0);
    setHtml(
      $('problems'),
      list.length
        ? list
            .map(
              (p) =>
                `<li><span class="sev ${esc(p.severity)}">${esc(p.severity)}</span><span class="obj">${esc(p.object)}</span>` +
                `${p.field ? ` <span class="field">${esc(p.field)}</span>` : ''}<div>${esc(p.message)}</div></li>`,
            )
            .join('')
        : '<li class="none">No problems.</li>',
    );
  }

  // ---------- timeline ----------
  const toLabel = (e) => (e.ejected && e.to === 'unhealthy' ? 'ejected' : e.to);

  /** What makes two timeline events one burst: health moves of the same kind, route table versions. */
  function burstKey(e) {
    if (e.type === 'health') return `health:${e.from}>${toLabel(e)}`;
    if (e.type === 'routes') return 'routes';
    return null;
  }

  /** Groups the timeline (newest first) into bursts: same kind, each within BURST_MS of the next. */
  function groups() {
    const q = view.q.trim().toLowerCase();
    const out = [];
    for (const e of timeline) {
      if (q && e.project && !e.project.toLowerCase().includes(q) && !String(e.instance ?? '').includes(q))
        continue;
      const k = burstKey(e);
      const last = out[out.length - 1];
      if (k && last && last.key === k && last.events[last.events.length - 1].time - e.time <= BURST_MS)
        last.events.push(e);
      else out.push({ key: k, events: [e] });
    }
    return out;
  }

  function timelineItem(e) {
    const cls = e.fresh ? ' class="new"' : '';
    const t = `<time>${fmtTime(e.time)}</time>`;
    switch (e.type) {
      case 'health':
        return `<li${cls} data-type="health">${t}<span class="what"><b>${esc(e.project)}/${esc(e.port)}/${esc(e.instance)}</b> ${esc(e.from)} → <span class="to" data-state="${esc(toLabel(e))}">${esc(toLabel(e))}</span><span class="tl-reason">${esc(e.reason)}</span></span></li>`;
      case 'routes':
        return `<li${cls} data-type="routes">${t}<span class="what">route table <b>v${esc(e.version)}</b>: ${esc(e.projects)} projects, ${esc(e.endpoints)} endpoints${e.added?.length ? `, +${e.added.length}` : ''}${e.removed?.length ? `, −${e.removed.length}` : ''}</span></li>`;
      case 'source':
        return `<li${cls} data-type="source">${t}<span class="what">source <b>${esc(e.source)}</b> ${esc(e.state)}${e.reason ? `<span class="tl-reason">${esc(e.reason)}</span>` : ''}</span></li>`;
      case 'problems':
        return `<li${cls} data-type="problems">${t}<span class="what">${esc(e.problems.length)} problem(s)</span></li>`;
      case 'upstream':
        return `<li${cls} data-type="upstream">${t}<span class="what"><b>${esc(e.project)}/${esc(e.port)}</b> ${e.retries ? `${esc(e.retries)} retries` : ''}${e.retries && e.rescues ? ', ' : ''}${e.rescues ? `${esc(e.rescues)} rescued` : ''}<span class="tl-reason">${e.until > e.time ? `until ${esc(fmtTime(e.until))}: ` : ''}clients were answered by another instance</span></span></li>`;
      case 'demo':
        return `<li${cls} data-type="demo">${t}<span class="what">demo: <b>${esc(e.action)}</b> ${esc(e.target)}</span></li>`;
      default:
        return '';
    }
  }

  function burstItem(g) {
    const [newest] = g.events;
    const oldest = g.events[g.events.length - 1];
    const fresh = g.events.some((e) => e.fresh);
    const t = `<time>${fmtTime(oldest.time)}</time>`;
    const what =
      newest.type === 'health'
        ? `<b>${g.events.length} instances</b> ${esc(newest.from)} → <span class="to" data-state="${esc(toLabel(newest))}">${esc(toLabel(newest))}</span>`
        : `route table <b>v${esc(oldest.version)}–v${esc(newest.version)}</b>: ${esc(newest.projects)} projects, ${esc(newest.endpoints)} endpoints`;
    // Oldest first inside a burst: the order it happened in.
    const inOrder = [...g.events].reverse();
    const names =
      newest.type === 'health'
        ? inOrder.map((e) => `${e.project}/${e.port}/${e.instance}`)
        : inOrder.map((e) => `v${e.version}`);
    const shown = names
      .slice(0, 50)
      .map((n) => `<li>${esc(n)}</li>`)
      .join('');
    const more = names.length > 50 ? `<li>… ${names.length - 50} more</li>` : '';
    return `<li${fresh ? ' class="new"' : ''} data-type="${esc(newest.type)}" data-burst="${g.events.length}">${t}<details class="what"><summary>${what}<span class="tl-reason">in ${Math.max(1, Math.round((newest.time - oldest.time) / 1000))} s, until ${esc(fmtTime(newest.time))}</span></summary><ul>${shown}${more}</ul></details></li>`;
  }

  function renderTimeline() {
    timelineDirty = false;
    const el = $('timeline');
    // Keep open bursts open across re-renders.
    const open = new Set([...el.querySelectorAll('details[open]')].map((d) => d.parentElement.dataset.key));
    const gs = groups();
    el.innerHTML = gs.length
      ? gs
          .map((g) => {
            const html = g.events.length >= 3 ? burstItem(g) : g.events.map(timelineItem).join('');
            const key = `${g.key}@${g.events[g.events.length - 1].time}`;
            return html.replace(/^<li/, `<li data-key="${esc(key)}"`);
          })
          .join('')
      : '<li class="none">No events yet.</li>';
    for (const d of el.querySelectorAll('li[data-key] > details'))
      if (open.has(d.parentElement.dataset.key)) d.open = true;
    for (const e of timeline) e.fresh = false;
  }

  setInterval(() => {
    for (const td of document.querySelectorAll('td.since[data-since]')) {
      const ms = Number(td.dataset.since);
      if (ms) setText(td, fmtAgo(ms));
    }
  }, 1000);

  // ---------- toolbar ----------
  const search = $('search');
  const stateSel = $('state-filter');
  const rangeSel = $('range');
  search.value = view.q;
  stateSel.value = view.state;
  rangeSel.innerHTML = Object.entries(RANGES)
    .map(([v, label]) => `<option value="${v}">${label}</option>`)
    .join('');
  rangeSel.value = String(view.range);
  search.addEventListener('input', () => {
    view.q = search.value;
    toggled.clear();
    timelineDirty = true;
    syncUrl();
    schedule();
  });
  stateSel.addEventListener('change', () => {
    view.state = stateSel.value;
    toggled.clear();
    syncUrl();
    schedule();
  });
  rangeSel.addEventListener('change', () => {
    view.range = Number(rangeSel.value);
    syncUrl();
    const open = [...charted.keys()];
    charted.clear();
    for (const c of cards.values()) for (const pv of c.ports.values()) rebuildCharts(pv);
    loadHistory(open);
  });
  $('open-all').addEventListener('click', () => {
    for (const p of model.projects) if (projectShown(p)) toggled.set(p.name, true);
    schedule();
  });
  $('close-all').addEventListener('click', () => {
    for (const p of model.projects) toggled.set(p.name, false);
    schedule();
  });

  // ---------- demo controls (only when the demo control API answers) ----------
  function demoInstance(project, instance) {
    return demo?.byKey?.get(`${project}/${instance}`) ?? null;
  }
  function setDemo(d) {
    demo = d ? { ...d, byKey: new Map(d.instances.map((i) => [`${i.project}/${i.instance}`, i])) } : null;
  }
  function demoButtons(project, instance, status) {
    const b = (action, label, disabled) =>
      `<button type="button" data-demo="${action}" data-project="${esc(project)}" data-instance="${esc(instance)}"${disabled ? ' disabled' : ''}>${label}</button>`;
    return (
      b('freeze', 'Freeze', status !== 'running') +
      b('kill', 'Kill', status === 'killed') +
      b('revive', 'Revive', status !== 'frozen' && status !== 'killed')
    );
  }
  function scaleControls(project) {
    const p = demo?.projects.find((x) => x.name === project);
    if (!p) return '';
    return `<span class="scale"><span class="tag">${esc(p.replicas)} replicas</span><button type="button" data-demo="scale-down" data-project="${esc(project)}" title="remove this project's highest-numbered instance (it drains first)">−</button><button type="button" data-demo="scale-up" data-project="${esc(project)}" title="add an instance to this project">+</button></span>`;
  }
  const loadDemo = debounce(async () => {
    try {
      const r = await api('/api/demo');
      setDemo(r.ok ? await r.json() : null);
    } catch {
      setDemo(null);
    }
    schedule();
  }, 300);
  document.addEventListener('click', async (ev) => {
    const btn = ev.target.closest('button[data-demo]');
    if (!btn) return;
    const { demo: action, project, instance } = btn.dataset;
    btn.disabled = true;
    const path = instance
      ? `/api/demo/${encodeURIComponent(project)}/${encodeURIComponent(instance)}/${action}`
      : `/api/demo/${encodeURIComponent(project)}/${action}`;
    try {
      const r = await api(path, { method: 'POST' });
      if (r.ok) setDemo(await r.json());
    } catch {}
    addTimeline(
      { type: 'demo', time: Date.now(), action, target: instance ? `${project}/${instance}` : project },
      true,
    );
    schedule();
  });

  // ---------- event stream ----------
  const conn = $('conn');
  function connect() {
    // The charts fetch their own history for the projects that are open: no replay of all of it.
    const es = new EventSource(withToken('/events?history=0'));
    es.addEventListener('open', () => {
      conn.dataset.state = 'live';
      conn.textContent = 'live';
    });
    es.addEventListener('error', () => {
      conn.dataset.state = 'down';
      conn.textContent = 'reconnecting';
    });
    const on = (name, fn) =>
      es.addEventListener(name, (m) => {
        fn(JSON.parse(m.data));
        schedule();
      });
    on('state', (s) => {
      performance.mark('wharf-state-received');
      applyState(s);
      structureKey = '';
    });
    on('timeline', (t) => {
      timeline.length = 0;
      for (const e of t.events) addTimeline(e, false);
    });
    on('health', (e) => {
      onHealth(e);
      addTimeline(e, true);
    });
    on('routes', (e) => {
      addTimeline(e, true);
      refetchProjects();
      loadDemo();
    });
    on('problems', (e) => {
      model.problems = e.problems;
      addTimeline(e, true);
    });
    on('source', (e) => {
      model.sources[e.source] = e;
      addTimeline(e, true);
    });
    on('upstream', (e) => addTimeline(e, true));
    on('traffic', onTraffic);
    on('demo', (d) => setDemo(d));
  }

  $('foot').innerHTML =
    `Live from <code>/events</code> · history kept in Wharf: 5 min at 1 s, 1 h at 10 s · data as JSON at <a href="${esc(withToken('/api/projects'))}">/api/projects</a>, <a href="${esc(withToken('/api/problems'))}">/api/problems</a>, <a href="${esc(withToken('/api/traffic'))}">/api/traffic</a>, <a href="${esc(withToken('/metrics'))}">/metrics</a>`;
  setWall(
    params.has('wall') ||
      (() => {
        try {
          return localStorage.getItem('wharf.wall') === '1';
        } catch {
          return false;
        }
      })(),
  );
  loadDemo();
  connect();
  render();
})();
