// Wharf dashboard: plain browser JavaScript, no build step, no network beyond the admin port.
// State comes from /events (Server-Sent Events): a `state` replay on connect, then live events.
// Charts are uPlot (vendored from the npm package, served by the admin port).
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

  const WINDOW = 300; // seconds of traffic shown in the charts
  const TIMELINE_MAX = 200;
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
  const traffic = { times: [], series: new Map() }; // key project/port/instance -> {rps, err, p99, last}
  const timeline = [];
  let demo = null; // { instances: [...], projects: [...] } when the demo control API is there
  let structureKey = '';
  const portViews = new Map(); // project/port -> { el, charts, chartKey, tbody, sum }
  const flashing = new Set();

  const $ = (id) => document.getElementById(id);
  const esc = (s) =>
    String(s ?? '').replace(
      /[&<>"']/g,
      (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c],
    );
  const keyOf = (project, port, instance) => `${project}/${port}/${instance}`;

  // ---------- wall mode ----------
  const wallBtn = $('wall-toggle');
  function setWall(on) {
    document.documentElement.classList.toggle('wall', on);
    // A wall display is dark whatever the system says; charts pick their colours up on rebuild.
    document.documentElement.classList.toggle('force-dark', on);
    for (const v of portViews.values()) v.chartKey = '';
    wallBtn.setAttribute('aria-pressed', String(on));
    try {
      localStorage.setItem('wharf.wall', on ? '1' : '0');
    } catch {}
    for (const v of portViews.values()) updateCharts(v);
  }
  wallBtn.addEventListener('click', () => setWall(!document.documentElement.classList.contains('wall')));
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

  function displayState(inst) {
    if (inst.state === 'unhealthy' && inst.ejected) return 'ejected';
    return inst.state;
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
    timeline.unshift({ ...e, fresh });
    if (timeline.length > TIMELINE_MAX) timeline.length = TIMELINE_MAX;
  }

  let refetchTimer = null;
  function refetchProjects() {
    clearTimeout(refetchTimer);
    refetchTimer = setTimeout(async () => {
      try {
        const r = await api('/api/projects');
        if (!r.ok) return;
        const body = await r.json();
        applyState({ ...body, problems: undefined, sources: undefined, domain: body.domain ?? model.domain });
        schedule();
      } catch {}
    }, 150);
  }

  // ---------- traffic ----------
  function seriesFor(key) {
    let s = traffic.series.get(key);
    if (!s) {
      const n = traffic.times.length;
      s = {
        rps: new Array(n).fill(null),
        err: new Array(n).fill(null),
        p99: new Array(n).fill(null),
        last: null,
      };
      traffic.series.set(key, s);
    }
    return s;
  }
  function trimTraffic() {
    const extra = traffic.times.length - WINDOW;
    if (extra <= 0) return;
    traffic.times.splice(0, extra);
    for (const s of traffic.series.values()) {
      s.rps.splice(0, extra);
      s.err.splice(0, extra);
      s.p99.splice(0, extra);
    }
  }
  function applyHistory(h) {
    traffic.times = [];
    traffic.series.clear();
    const list = h.series ?? [];
    if (list.length === 0) return;
    const end = Math.max(...list.map((s) => s.end)) / 1000;
    const n = Math.min(WINDOW, Math.max(...list.map((s) => s.rps.length)));
    for (let i = 0; i < n; i++) traffic.times.push(end - (n - 1 - i));
    for (const s of list) {
      const k = keyOf(s.project, s.port, s.instance);
      const out = seriesFor(k);
      const shift = end - s.end / 1000; // seconds this series ends before the common end
      for (let i = 0; i < n; i++) {
        const j = s.rps.length - 1 - (n - 1 - i) + shift;
        const ok = j >= 0 && j < s.rps.length;
        out.rps[i] = ok ? s.rps[j] : null;
        out.err[i] = ok ? s.errorRate[j] * 100 : null;
        out.p99[i] = ok ? s.p99Ms[j] : null;
      }
    }
  }
  function onTraffic(e) {
    const t = e.time / 1000;
    if (traffic.times.length && t <= traffic.times[traffic.times.length - 1]) return;
    traffic.times.push(t);
    const seen = new Set();
    for (const p of e.points) {
      const k = keyOf(p.project, p.port, p.instance);
      const s = seriesFor(k);
      s.rps.push(p.rps);
      s.err.push(p.rps ? p.errorRate * 100 : null);
      s.p99.push(p.p99Ms);
      s.last = p;
      seen.add(k);
    }
    for (const [k, s] of traffic.series) {
      if (seen.has(k)) continue;
      s.rps.push(null);
      s.err.push(null);
      s.p99.push(null);
      if (s.rps.length > traffic.times.length) {
        s.rps.length = s.err.length = s.p99.length = traffic.times.length;
      }
    }
    trimTraffic();
    for (const v of portViews.values()) updateCharts(v);
  }

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

  function render() {
    renderStats();
    renderProjects();
    renderProblems();
    renderTimeline();
  }

  function renderApiserverButton() {
    const btn = $('apiserver-toggle');
    const a = demo?.apiserver;
    btn.hidden = !a;
    if (!a) return;
    btn.textContent = a.up ? 'Apiserver outage' : 'Restore apiserver';
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
    let rps = 0;
    for (const p of model.projects)
      for (const q of p.ports)
        for (const i of q.instances) {
          total++;
          if (i.state === 'healthy') healthy++;
          if (i.state === 'unhealthy') bad++;
          const s = traffic.series.get(keyOf(p.name, q.name, i.name));
          if (s?.last) rps += s.last.windowRps;
        }
    const src = Object.values(model.sources);
    const srcHtml = src
      .map(
        (s) =>
          `<div class="stat ${s.state === 'synced' ? 'ok' : 'bad'}" title="${esc(s.reason ?? '')}"><b>${esc(s.state)}</b><small>${esc(s.source)}</small></div>`,
      )
      .join('');
    $('stats').innerHTML =
      `<div class="stat"><b>${model.projects.length}</b><small>projects</small></div>` +
      `<div class="stat ok"><b data-testid="healthy-count">${healthy}/${total}</b><small>healthy</small></div>` +
      `<div class="stat ${bad ? 'bad' : ''}"><b>${bad}</b><small>unhealthy</small></div>` +
      `<div class="stat"><b>${fmtRate(rps)}</b><small>req/s</small></div>` +
      (model.version != null
        ? `<div class="stat"><b>v${esc(model.version)}</b><small>route table</small></div>`
        : '') +
      srcHtml;
  }

  function renderProjects() {
    const container = $('projects');
    const key = model.projects.map((p) => `${p.name}:${p.ports.map((q) => q.name).join(',')}`).join('|');
    $('projects-empty').hidden = model.projects.length > 0;
    if (key !== structureKey) {
      structureKey = key;
      for (const v of portViews.values()) for (const c of v.charts) c.plot?.destroy();
      portViews.clear();
      for (const el of [...container.querySelectorAll('.project')]) el.remove();
      for (const p of model.projects) container.appendChild(buildProject(p));
    }
    for (const p of model.projects) {
      const head = container.querySelector(`.project[data-project="${CSS.escape(p.name)}"] .demo-scale`);
      if (head) head.innerHTML = scaleControls(p.name);
      for (const q of p.ports) {
        const v = portViews.get(`${p.name}/${q.name}`);
        if (!v) continue;
        patchRows(
          v.tbody,
          q.instances.map((i, idx) => instanceRow(p, q, i, idx)),
        );
        updateCharts(v);
      }
    }
    flashing.clear();
  }

  function buildProject(p) {
    const el = document.createElement('article');
    el.className = 'project';
    el.dataset.project = p.name;
    const tags = [];
    if (p.origin) tags.push(`<span class="tag" title="declared in">${esc(p.origin)}</span>`);
    if (p.affinity && p.affinity !== 'none')
      tags.push(`<span class="tag">affinity: ${esc(p.affinity)}</span>`);
    if (p.healthPath) tags.push(`<span class="tag">health: ${esc(p.healthPath)}</span>`);
    el.innerHTML = `<header><h2>${esc(p.name)}</h2>${tags.join('')}<span class="spacer"></span><span class="demo-scale"></span></header>`;
    for (const q of p.ports) {
      const sec = document.createElement('section');
      sec.className = 'port';
      sec.dataset.port = q.name;
      const host = model.domain ? `${q.name}.${p.name}.${model.domain}` : '';
      sec.innerHTML =
        `<div class="port-head"><h3>${esc(q.name)}</h3>${host ? `<span class="host">${esc(host)}</span>` : ''}<span class="sum"></span></div>` +
        `<div class="charts">${['req/s', 'errors %', 'p99 latency'].map((t) => `<div class="chart"><h4>${t}<span></span></h4><div class="plot"></div></div>`).join('')}</div>` +
        `<table class="instances"><colgroup><col class="c-name"><col class="c-state"><col><col class="c-since"><col class="c-num"><col class="c-num"><col class="c-num"><col class="c-act"></colgroup><thead><tr><th>instance</th><th>state</th><th>why</th><th>since</th><th class="num">req/s</th><th class="num">errors</th><th class="num">p99</th><th class="actions"></th></tr></thead><tbody></tbody></table>`;
      el.appendChild(sec);
      const plots = [...sec.querySelectorAll('.chart')];
      const v = {
        project: p.name,
        port: q.name,
        el: sec,
        tbody: sec.querySelector('tbody'),
        sum: sec.querySelector('.sum'),
        charts: plots.map((c, i) => ({
          holder: c.querySelector('.plot'),
          label: c.querySelector('h4 span'),
          kind: ['rps', 'err', 'p99'][i],
          plot: null,
        })),
        chartKey: '',
      };
      portViews.set(`${p.name}/${q.name}`, v);
    }
    return el;
  }

  function instanceColor(idx) {
    return PALETTE[idx % PALETTE.length];
  }

  function instanceRow(p, q, i, idx) {
    const k = keyOf(p.name, q.name, i.name);
    const st = displayState(i);
    const last = traffic.series.get(k)?.last;
    const d = demoInstance(p.name, i.name);
    const err = last?.windowErrorRate ?? null;
    return {
      key: i.name,
      attrs: { 'data-instance': i.name, 'data-state': i.state, 'data-display-state': st },
      cells: [
        `<span class="dot" style="background:${instanceColor(idx)}"></span><span class="name">${esc(i.name)}</span>` +
          (d && d.status !== 'running'
            ? `<span class="demo-tag" data-status="${esc(d.status)}">${esc(d.status)}</span>`
            : '') +
          `<div class="addr">${esc(i.address ?? '')}</div>`,
        `<span class="pill${flashing.has(k) ? ' flash' : ''}" data-state="${esc(st)}">${esc(st)}</span>`,
        esc(i.reason || (i.draining ? 'terminating: serving pinned and sticky requests only' : '')),
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
        if (td.dataset.html !== html) {
          td.innerHTML = html;
          td.dataset.html = html;
        }
      });
      tr.cells[3].dataset.since = String(r.since);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const tr of existing.values()) tr.remove();
  }

  function chartOpts(kind, names, width, height) {
    const dark =
      getComputedStyle(document.documentElement).getPropertyValue('color-scheme').trim() !== 'light';
    const axisColor = dark ? '#8b9ab5' : '#5b6b84';
    const grid = dark ? '#1e2a44' : '#e5ebf3';
    const fmt = kind === 'p99' ? (x) => fmtMs(x) : kind === 'err' ? (x) => `${x}%` : (x) => fmtRate(x);
    return {
      width,
      height,
      legend: { show: false },
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
          space: 70,
        },
        {
          stroke: axisColor,
          grid: { stroke: grid, width: 1 },
          ticks: { show: false },
          size: 46,
          font: '11px system-ui',
          values: (_u, vals) => vals.map(fmt),
          space: 24,
        },
      ],
      series: [
        {},
        ...names.map((n, idx) => ({
          label: n || '(no instance)',
          stroke: n ? instanceColor(idx) : '#94a3b8',
          dash: n ? undefined : [4, 4],
          width: 1.6,
          points: { show: false },
          spanGaps: false,
        })),
      ],
    };
  }

  function portInstanceNames(v) {
    const p = model.projects.find((x) => x.name === v.project);
    const q = p?.ports.find((x) => x.name === v.port);
    const names = (q?.instances ?? []).map((i) => i.name);
    if (traffic.series.has(keyOf(v.project, v.port, ''))) names.push('');
    return names;
  }

  function resizeCharts(v) {
    for (const c of v.charts) {
      if (!c.plot) continue;
      c.plot.setSize({ width: c.holder.clientWidth, height: c.holder.clientHeight });
    }
  }

  function updateCharts(v) {
    const names = portInstanceNames(v);
    const ck = names.join('\u0000');
    if (ck !== v.chartKey) {
      v.chartKey = ck;
      for (const c of v.charts) {
        c.plot?.destroy();
        c.plot = new uPlot(
          chartOpts(c.kind, names, c.holder.clientWidth || 300, c.holder.clientHeight || 92),
          chartData(v, c.kind, names),
          c.holder,
        );
      }
    } else {
      for (const c of v.charts) c.plot.setData(chartData(v, c.kind, names));
    }
    // Port totals: sum over its instance ports (plus requests that found no instance).
    let rps = 0;
    let errs = 0;
    let p99 = null;
    for (const n of names) {
      const last = traffic.series.get(keyOf(v.project, v.port, n))?.last;
      if (!last) continue;
      rps += last.windowRps;
      errs += last.windowRps * last.windowErrorRate;
      if (last.windowP99Ms != null) p99 = Math.max(p99 ?? 0, last.windowP99Ms);
    }
    v.sum.textContent = `${fmtRate(rps)} req/s · ${rps ? fmtPct(errs / rps) : '0%'} errors · p99 ${fmtMs(p99)} (10 s)`;
    v.charts[0].label.textContent = fmtRate(rps);
    v.charts[1].label.textContent = rps ? fmtPct(errs / rps) : '–';
    v.charts[2].label.textContent = fmtMs(p99);
  }

  function chartData(v, kind, names) {
    const data = [traffic.times];
    for (const n of names) {
      const s = traffic.series.get(keyOf(v.project, v.port, n));
      data.push(s ? s[kind] : new Array(traffic.times.length).fill(null));
    }
    return data;
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const v of portViews.values()) resizeCharts(v);
    }, 100);
  });

  function renderProblems() {
    const list = model.problems;
    const count = $('problems-count');
    count.textContent = String(list.length);
    count.classList.toggle('has', list.length > 0);
    $('problems').innerHTML = list.length
      ? list
          .map(
            (p) =>
              `<li><span class="sev ${esc(p.severity)}">${esc(p.severity)}</span><span class="obj">${esc(p.object)}</span>` +
              `${p.field ? ` <span class="field">${esc(p.field)}</span>` : ''}<div>${esc(p.message)}</div></li>`,
          )
          .join('')
      : '<li class="none">No problems.</li>';
  }

  function timelineItem(e) {
    const cls = e.fresh ? ' class="new"' : '';
    const t = `<time>${fmtTime(e.time)}</time>`;
    switch (e.type) {
      case 'health':
        return `<li${cls} data-type="health">${t}<span class="what"><b>${esc(e.project)}/${esc(e.port)}/${esc(e.instance)}</b> ${esc(e.from)} → <span class="to" data-state="${esc(e.to)}">${esc(e.ejected && e.to === 'unhealthy' ? 'ejected' : e.to)}</span><span class="tl-reason">${esc(e.reason)}</span></span></li>`;
      case 'routes':
        return `<li${cls} data-type="routes">${t}<span class="what">route table <b>v${esc(e.version)}</b>: ${esc(e.projects)} projects, ${esc(e.endpoints)} endpoints${e.added?.length ? `, +${e.added.length}` : ''}${e.removed?.length ? `, −${e.removed.length}` : ''}</span></li>`;
      case 'source':
        return `<li${cls} data-type="source">${t}<span class="what">source <b>${esc(e.source)}</b> ${esc(e.state)}${e.reason ? `<span class="tl-reason">${esc(e.reason)}</span>` : ''}</span></li>`;
      case 'problems':
        return `<li${cls} data-type="problems">${t}<span class="what">${esc(e.problems.length)} problem(s)</span></li>`;
      case 'demo':
        return `<li${cls} data-type="demo">${t}<span class="what">demo: <b>${esc(e.action)}</b> ${esc(e.target)}</span></li>`;
      default:
        return '';
    }
  }
  function renderTimeline() {
    $('timeline').innerHTML = timeline.length
      ? timeline.map(timelineItem).join('')
      : '<li class="none">No events yet.</li>';
    for (const e of timeline) e.fresh = false;
  }

  setInterval(() => {
    for (const td of document.querySelectorAll('td.since[data-since]')) {
      const ms = Number(td.dataset.since);
      if (ms) td.textContent = fmtAgo(ms);
    }
  }, 1000);

  // ---------- demo controls (only when the demo control API answers) ----------
  function demoInstance(project, instance) {
    return demo?.instances.find((d) => d.project === project && d.instance === instance) ?? null;
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
    return `<span class="scale"><span class="tag">${esc(p.replicas)} replicas</span><button type="button" data-demo="scale-down" data-project="${esc(project)}" title="remove an instance">−</button><button type="button" data-demo="scale-up" data-project="${esc(project)}" title="add an instance">+</button></span>`;
  }
  async function loadDemo() {
    try {
      const r = await api('/api/demo');
      demo = r.ok ? await r.json() : null;
    } catch {
      demo = null;
    }
    schedule();
  }
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
      if (r.ok) demo = await r.json();
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
    const es = new EventSource(withToken('/events'));
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
      applyState(s);
      structureKey = '';
    });
    on('timeline', (t) => {
      timeline.length = 0;
      for (const e of t.events) addTimeline(e, false);
    });
    on('history', (h) => {
      applyHistory(h);
      for (const v of portViews.values()) v.chartKey = '';
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
    on('traffic', onTraffic);
    on('demo', (d) => {
      demo = d;
    });
  }

  $('foot').innerHTML =
    `Live from <code>/events</code> · data as JSON at <a href="${esc(withToken('/api/projects'))}">/api/projects</a>, <a href="${esc(withToken('/api/problems'))}">/api/problems</a>, <a href="${esc(withToken('/metrics'))}">/metrics</a>`;
  loadDemo();
  connect();
  render();
})();
