// Fuzzing request heads (issue 20, "keep finding them"): fast-check builds requests from methods,
// targets, Host values, header names and values and framings (valid, broken and ambiguous), sends
// each with a request pipelined behind it over a raw connection, and checks the invariants:
//
// 1. Wharf and the upstream agree on where each request ends: every request an instance receives
//    is one that node's parser (with Wharf's options, on the same bytes, in a reference server) saw
//    as a request, with the same method, target and body. Nothing is smuggled in a body.
// 2. No request of the client's making changes any instance's health.
// 3. No crash: Wharf answers a plain request after every run.
// 4. No unlogged request: every request an instance receives has an access record, and every answer
//    the client gets has one too.
// 5. Nothing runs upstream behind an answer that closes the connection.
// 6. On the edge tier (every other run), whatever the client said about who it is, an instance
//    hears only what Wharf says: x-forwarded-for/-proto/-host and `forwarded` set afresh, no other
//    client claim, no x-wharf-* directive.
//
// CI runs a fixed seed and a small budget (a few seconds). A longer run is one command:
//   FUZZ_RUNS=100000 npm test -- fuzz            (FUZZ_SEED=<n> for another sequence)
// A failure prints the seed and the shrunk request; add it to test/security/ as a regression test.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { AccessRecord } from '../../src/model/access.ts';
import type { WharfEvent } from '../../src/model/events.ts';
import { requestTarget } from '../../src/proxy/request-head.ts';
import { get, type Started, startWharf } from '../support/wharf.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
const SEED = Number(process.env.FUZZ_SEED ?? 20_200);
/** `@@` in a generated request stands for the run's id. */
const ID = '@@';

interface Received {
  readonly method: string;
  readonly url: string;
  /** `x-fuzz-id`: which request of which run (both tiers pass it on). */
  readonly fid: string;
  /** `x-request-id`: the access record's id (the client's on the internal tier, Wharf's on the edge). */
  readonly rid: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly upgrade: boolean;
}

/** A node:http server that records every request it parses (the upstream, or the reference parser). */
async function recorder(options: http.ServerOptions, upgrades: boolean) {
  const seen: Received[] = [];
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(',') : (v ?? ''));
  const record = (req: http.IncomingMessage, body: string, upgrade: boolean) => {
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      fid: one(req.headers['x-fuzz-id']),
      rid: one(req.headers['x-request-id']),
      headers: req.headers,
      body,
      upgrade,
    });
  };
  const server = http.createServer(options, (req, res) => {
    const probe = req.headers['user-agent'] === 'wharf-health';
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (!probe) record(req, Buffer.concat(chunks).toString('latin1'), false);
      res.end('ok');
    });
    req.on('error', () => {});
  });
  server.on('clientError', (_e, socket: net.Socket) => socket.destroy());
  if (upgrades) {
    // What Wharf's listener does with an Upgrade: the request ends at its head.
    server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
      record(req, '', true);
      socket.destroy();
    });
    server.on('connect', (_req, socket: net.Socket) => socket.destroy());
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    seen,
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

// ---- the generator ---------------------------------------------------------------------------

const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".split('');
const token = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 10 });

// Each part is mostly well formed, now and then odd, so that most requests get through node's
// parser and a good share reaches an instance, while every kind of oddity keeps turning up.
const method = fc.oneof(
  { weight: 24, arbitrary: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH') },
  {
    weight: 2,
    arbitrary: fc.constantFrom('TRACE', 'CONNECT', 'PROPFIND', 'M-SEARCH', 'PRI', 'QUERY', 'get'),
  },
  { weight: 1, arbitrary: token },
);

const pathPiece = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.constantFrom(..."abzAZ09-._~!$&'()*+,;=:@/?".split(''), '%2e%2e/', '../', '//', '%41'),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(...'#[]{}|\\^`"<> '.split(''), '%00', '%0d%0a', '\u00e9', '\x7f', '\t'),
  },
);
const suffix = fc.array(pathPiece, { maxLength: 8 }).map((a) => a.join(''));
const target = fc.oneof(
  { weight: 12, arbitrary: suffix.map((s) => `/f/${ID}${s}`) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        fc.constantFrom(
          'http://fz.test.local',
          'HTTP://FZ.test.local:80',
          'https://fz.test.local',
          'http://user@fz.test.local',
          'http://',
          'http://nope.test.local',
          'http://fz-0.http.fz.test.local',
        ),
        suffix,
      )
      .map(([a, s]) => `${a}/f/${ID}${s}`),
  },
  { weight: 1, arbitrary: fc.constantFrom('*', `f/${ID}`, `//fz.test.local/f/${ID}`, `?/f/${ID}`, '') },
);

const host = fc.oneof(
  { weight: 16, arbitrary: fc.constant('fz.test.local') },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'FZ.Test.Local',
      'fz.test.local:8080',
      'fz.test.local.',
      'fz-0.http.fz.test.local',
      'fz-9.http.fz.test.local',
      'http.fz.test.local',
      'nope.test.local',
      '',
      'fz.test.local, other.test.local',
      '[::1]',
      'fz.test.local:99999',
      ' fz.test.local',
    ),
  },
  { weight: 1, arbitrary: token },
);

/** Header values: printable ASCII, obs-text, tabs; now and then a CR, LF or NUL. */
const value = fc.oneof(
  {
    weight: 30,
    arbitrary: fc.string({
      unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
      maxLength: 16,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.string({
      unit: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)),
      maxLength: 4,
    }),
  },
  { weight: 1, arbitrary: fc.constantFrom('\t', ' x ', '') },
  { weight: 1, arbitrary: fc.constantFrom('a\rb', 'a\nb', 'a\0b') },
);
const headerName = fc.oneof(
  {
    weight: 20,
    arbitrary: fc.constantFrom(
      'Accept',
      'User-Agent',
      'Cookie',
      'Connection',
      'Keep-Alive',
      'TE',
      'Trailer',
      'Upgrade',
      'Expect',
      'Proxy-Connection',
      'X-Forwarded-For',
      'X-Forwarded-Prefix',
      'Forwarded',
      'X-Real-IP',
      'True-Client-IP',
      'X-Wharf-Instance',
      'X-Wharf-Via',
      'Content-Type',
      'Authorization',
      'Host',
    ),
  },
  { weight: 8, arbitrary: token },
  { weight: 1, arbitrary: fc.constantFrom('Bad Name', 'Bad:Name', 'Über', ' Accept', 'Accept ', '') },
);
const header = fc.oneof(
  { weight: 12, arbitrary: fc.tuple(headerName, value) },
  {
    weight: 2,
    arbitrary: fc.constantFrom<[string, string]>(
      ['Connection', 'close'],
      ['Connection', 'upgrade'],
      ['Connection', 'keep-alive, Accept'],
      ['Upgrade', 'websocket'],
      ['Expect', '100-continue'],
      ['Expect', 'something-else'],
      ['X-Wharf-Via', 'internal'],
      ['X-Wharf-Instance', 'fz-1'],
    ),
  },
);

const SMUGGLE = `GET /smuggled HTTP/1.1\r\nHost: fz.test.local\r\nX-Fuzz-Id: ${ID}-x\r\n\r\n`;
const body = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.string({
      unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)),
      maxLength: 80,
    }),
  },
  { weight: 2, arbitrary: fc.constant(SMUGGLE) },
  { weight: 1, arbitrary: fc.string({ maxLength: 10 }).map((s) => `${s}${SMUGGLE}`) },
);

const FRAMINGS = [
  'none',
  'cl',
  'cl-short',
  'cl-long',
  'cl-twice-same',
  'cl-twice-different',
  'cl-odd',
  'chunked',
  'chunked-extensions',
  'chunked-trailers',
  'chunked-bad-size',
  'chunked-no-crlf',
  'chunked-bare-lf',
  'cl-and-chunked',
  'te-gzip-chunked',
  'te-gzip',
  'te-chunked-twice',
  'te-odd',
] as const;
type Framing = (typeof FRAMINGS)[number];

interface Case {
  readonly method: string;
  readonly target: string;
  readonly host: string | null;
  readonly headers: [string, string][];
  readonly framing: Framing;
  readonly body: string;
  readonly chunkSizes: number[];
  readonly at: number;
  readonly version: string;
  /** Where the bytes are split into separate writes (as fractions of the length). */
  readonly splits: number[];
}

const testCase: fc.Arbitrary<Case> = fc.record({
  method,
  target,
  host: fc.option(host, { freq: 8 }),
  headers: fc.array(header, { maxLength: 6 }),
  // Valid framings as often as all the broken and ambiguous ones together.
  framing: fc.oneof(
    {
      weight: 3,
      arbitrary: fc.constantFrom<Framing>('none', 'cl', 'chunked', 'chunked-extensions', 'chunked-trailers'),
    },
    { weight: 2, arbitrary: fc.constantFrom(...FRAMINGS) },
  ),
  body,
  chunkSizes: fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 4 }),
  at: fc.nat(6),
  splits: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 3 }),
  version: fc.oneof(
    { weight: 30, arbitrary: fc.constant('HTTP/1.1') },
    { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'http/1.1') },
  ),
});

function chunked(body: string, sizes: number[], ext: boolean): string {
  let out = '';
  let i = 0;
  let k = 0;
  while (i < body.length) {
    const n = Math.min(sizes[k++ % sizes.length], body.length - i);
    out += `${n.toString(16)}${ext ? ';name="v"' : ''}\r\n${body.slice(i, i + n)}\r\n`;
    i += n;
  }
  return `${out}0\r\n`;
}

/** The raw request for `c` (latin1), run id substituted. */
function render(c: Case, id: string): string {
  const headers: [string, string][] = [...c.headers];
  let payload = c.body;
  const framing: [string, string][] = [];
  switch (c.framing) {
    case 'none':
      payload = '';
      break;
    case 'cl':
      framing.push(['Content-Length', String(payload.length)]);
      break;
    case 'cl-short':
      framing.push(['Content-Length', String(Math.max(0, payload.length - 3))]);
      break;
    case 'cl-long':
      framing.push(['Content-Length', String(payload.length + 3)]);
      break;
    case 'cl-twice-same':
      framing.push(['Content-Length', String(payload.length)], ['Content-Length', String(payload.length)]);
      break;
    case 'cl-twice-different':
      framing.push(
        ['Content-Length', String(payload.length)],
        ['Content-Length', String(payload.length + 1)],
      );
      break;
    case 'cl-odd':
      framing.push(['Content-Length', `+${payload.length}`]);
      break;
    case 'chunked':
      framing.push(['Transfer-Encoding', 'chunked']);
      payload = `${chunked(payload, c.chunkSizes, false)}\r\n`;
      break;
    case 'chunked-extensions':
      framing.push(['Transfer-Encoding', 'chunked']);
      payload = `${chunked(payload, c.chunkSizes, true)}\r\n`;
      break;
    case 'chunked-trailers':
      framing.push(['Transfer-Encoding', 'chunked']);
      payload = `${chunked(payload, c.chunkSizes, false)}X-Sum: 1\r\n\r\n`;
      break;
    case 'chunked-bad-size':
      framing.push(['Transfer-Encoding', 'chunked']);
      payload = `zz\r\n${payload}\r\n0\r\n\r\n`;
      break;
    case 'chunked-no-crlf':
      framing.push(['Transfer-Encoding', 'chunked']);
      payload = `${payload.length.toString(16)}\r\n${payload}0\r\n\r\n`;
      break;
    case 'chunked-bare-lf':
      framing.push(['Transfer-Encoding', 'chunked']);
      payload = `${payload.length.toString(16)}\n${payload}\n0\n\n`;
      break;
    case 'cl-and-chunked':
      framing.push(['Content-Length', String(payload.length)], ['Transfer-Encoding', 'chunked']);
      payload = `${chunked(payload, c.chunkSizes, false)}\r\n`;
      break;
    case 'te-gzip-chunked':
      framing.push(['Transfer-Encoding', 'gzip, chunked']);
      payload = `${chunked(payload, c.chunkSizes, false)}\r\n`;
      break;
    case 'te-gzip':
      framing.push(['Transfer-Encoding', 'gzip']);
      break;
    case 'te-chunked-twice':
      framing.push(['Transfer-Encoding', 'chunked'], ['Transfer-Encoding', 'chunked']);
      payload = `${chunked(payload, c.chunkSizes, false)}\r\n`;
      break;
    case 'te-odd':
      framing.push(['Transfer-Encoding', ' Chunked\t']);
      payload = `${chunked(payload, c.chunkSizes, false)}\r\n`;
      break;
  }
  headers.splice(Math.min(c.at, headers.length), 0, ...framing);
  if (c.host !== null) headers.unshift(['Host', c.host]);
  headers.push(['X-Request-Id', `${id}-a`], ['X-Fuzz-Id', `${id}-a`]);
  const sub = (s: string) => s.split(ID).join(id);
  const head = `${c.method} ${sub(c.target)} ${c.version}\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  const behind = `GET /sentinel HTTP/1.1\r\nHost: fz.test.local\r\nX-Request-Id: ${id}-s\r\nX-Fuzz-Id: ${id}-s\r\nConnection: close\r\n\r\n`;
  return head + sub(payload) + behind;
}

/**
 * Writes `raw` (in pieces, a few ms apart, when `splits` says so) and collects the answer until the server closes (the request behind says
 * `Connection: close`) or `ms` passes. No half-close: node takes a client's FIN as the client going
 * away (499), which would hide every answer.
 */
function send(port: number, raw: string, splits: number[], ms = 1000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(out);
    };
    const timer = setTimeout(done, ms);
    s.on('data', (d) => {
      out += d.toString('latin1');
    });
    s.on('close', done);
    s.on('error', () => {});
    const bytes = Buffer.from(raw, 'latin1');
    const cuts = [...new Set(splits.map((f) => Math.floor(f * bytes.length)))].sort((a, b) => a - b);
    let from = 0;
    const next = () => {
      const to = cuts.shift() ?? bytes.length;
      if (!s.destroyed) s.write(bytes.subarray(from, to));
      from = to;
      if (to < bytes.length) setTimeout(next, 2);
    };
    next();
  });
}

/** Final answers (not 1xx) in what the client got; generated values never contain `HTTP/`. */
function answers(raw: string): number {
  return raw.match(/HTTP\/1\.1 [2-5]\d\d /g)?.length ?? 0;
}

/** The head of the first final answer in what the client got, lowercased ('' when there is none). */
function firstFinalHead(raw: string): string {
  const m = /HTTP\/1\.1 [2-5]\d\d [\s\S]*?\r\n\r\n/.exec(raw);
  return m ? m[0].toLowerCase() : '';
}

/** What an edge tier lets an instance hear about the client, and nothing else of the kind. */
const CLAIM_PREFIXES = ['x-forwarded-', 'x-wharf-'];
const CLAIMS = ['forwarded', 'x-real-ip', 'true-client-ip', 'x-client-ip', 'x-forwarded'];
function edgeClaimsClean(h: http.IncomingHttpHeaders): string | undefined {
  if (h['x-forwarded-for'] !== '127.0.0.1') return `x-forwarded-for: ${h['x-forwarded-for']}`;
  if (h['x-forwarded-proto'] !== 'http') return `x-forwarded-proto: ${h['x-forwarded-proto']}`;
  if (
    typeof h.forwarded !== 'string' ||
    !h.forwarded.startsWith('for=127.0.0.1;') ||
    h.forwarded.includes(',')
  )
    return `forwarded: ${h.forwarded}`;
  for (const name of Object.keys(h)) {
    if (name === 'x-forwarded-for' || name === 'x-forwarded-proto' || name === 'x-forwarded-host') continue;
    if (name === 'forwarded' || (name === 'x-wharf-via' && h[name] === 'edge')) continue;
    if (CLAIMS.includes(name) || CLAIM_PREFIXES.some((p) => name.startsWith(p))) return `${name}: ${h[name]}`;
  }
  return undefined;
}

/** The target an instance receives for one node parsed: origin form (absolute-form is rewritten). */
function originForm(url: string): string {
  const t = requestTarget(url);
  return t.form === 'absolute' ? t.path : url;
}

describe('fuzzing request heads', () => {
  let upstreams: Awaited<ReturnType<typeof recorder>>[];
  let reference: Awaited<ReturnType<typeof recorder>>;
  let w: Started;
  let edge: Started;
  const access: AccessRecord[] = [];
  const healthEvents: WharfEvent[] = [];

  before(async () => {
    upstreams = [await recorder({}, false), await recorder({}, false)];
    // Wharf's listener options (proxy/server.ts), so it parses what Wharf's parser parses.
    reference = await recorder(
      {
        maxHeaderSize: 16_384,
        insecureHTTPParser: false,
        requireHostHeader: false,
        joinDuplicateHeaders: false,
      },
      true,
    );
    const instances = Object.fromEntries(
      upstreams.map((u, i) => [`fz-${i}`, { http: `127.0.0.1:${u.port}` }]),
    );
    const observe = {
      onAccess: (r: AccessRecord) => access.push(r),
      onEvent: (e: WharfEvent) => {
        if (e.type === 'health') healthEvents.push(e);
      },
    };
    // Small, so generated bodies take both paths: read whole first, and streamed.
    const limits = { 'body-buffer-bytes': 32 };
    w = await startWharf({ projects: { fz: { instances } }, limits }, observe);
    edge = await startWharf({ tier: 'edge', projects: { fz: { public: true, instances } }, limits }, observe);
    const until = Date.now() + 3000;
    const healthy = (x: Started) => x.wharf.health.list().every((e) => e.status.state === 'healthy');
    while (!healthy(w) || !healthy(edge)) {
      if (Date.now() > until) assert.fail('instances not healthy');
      await new Promise((r) => setTimeout(r, 20));
    }
    healthEvents.length = 0;
  });
  after(async () => {
    await w.stop();
    await edge.stop();
    for (const u of upstreams) await u.close();
    await reference.close();
  });

  it(`${RUNS} generated requests keep every invariant (seed ${SEED})`, {
    timeout: 60_000 + RUNS * 200,
  }, async (t) => {
    let run = 0;
    // What the runs exercised: the first answer's status, and how many requests went upstream.
    const statuses = new Map<string, number>();
    let upstreamed = 0;
    await fc.assert(
      fc.asyncProperty(testCase, async (c) => {
        const id = `fz${++run}`;
        const raw = render(c, id);
        const onEdge = run % 2 === 0;
        const logged = access.length;
        const upstreamSeen = upstreams.map((u) => u.seen.length);
        const referenceSeen = reference.seen.length;
        const got = await send(onEdge ? edge.port : w.port, raw, c.splits);
        await send(reference.port, raw, c.splits, 500);
        // Let the records of requests still finishing (upstream and access log) arrive.
        await new Promise((r) => setTimeout(r, 5));
        const records = access.slice(logged);
        const parsed = reference.seen.slice(referenceSeen);
        const forwarded = upstreams.flatMap((u, i) => u.seen.slice(upstreamSeen[i]));
        const status = /^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 'none';
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        upstreamed += forwarded.filter((f) => f.fid.endsWith('-a')).length;
        const context = () => `request ${JSON.stringify(raw)}\nanswer ${JSON.stringify(got.slice(0, 400))}`;

        // 1. Every request an instance received is one node parsed from these bytes, whole.
        const fids = new Set<string>();
        for (const f of forwarded) {
          assert.ok(
            f.fid.startsWith(`${id}-`),
            `an instance received a request of another run: ${f.fid}\n${context()}`,
          );
          assert.ok(!fids.has(f.fid), `an instance received ${f.fid} twice\n${context()}`);
          fids.add(f.fid);
          const ref = parsed.find((p) => p.fid === f.fid);
          assert.ok(
            ref,
            `an instance received ${f.method} ${f.url} (${f.fid}), which node never parsed\n${context()}`,
          );
          assert.equal(f.method, ref.method, context());
          assert.equal(f.url, originForm(ref.url), context());
          if (!ref.upgrade) assert.equal(f.body, ref.body, `the body differs\n${context()}`);
          // 6. The edge's hygiene.
          if (onEdge) {
            const claim = edgeClaimsClean(f.headers);
            assert.equal(claim, undefined, `a client claim reached the instance: ${claim}\n${context()}`);
          }
        }
        // 2. Health untouched.
        assert.deepEqual(healthEvents, [], `a client request changed an instance's health\n${context()}`);
        // 4. Logged: what went upstream, and every answer the client got.
        const ids = new Set(records.map((r) => r.requestId));
        for (const f of forwarded) assert.ok(ids.has(f.rid), `${f.rid} went upstream unlogged\n${context()}`);
        assert.ok(
          records.length >= answers(got),
          `${answers(got)} answers but ${records.length} access records\n${context()}`,
        );
        // 5. Behind a closing answer, nothing more.
        if (/\r\nconnection: close\r\n/.test(firstFinalHead(got)))
          assert.ok(!fids.has(`${id}-s`), `the request behind a closing answer ran upstream\n${context()}`);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true, includeErrorInReport: true },
    );
    t.diagnostic(
      `first answers: ${[...statuses].map(([k, n]) => `${k} x${n}`).join(', ')}; fuzzed requests upstream: ${upstreamed}`,
    );
    // 3. Still serving, and every instance still in.
    for (const x of [w, edge]) {
      assert.equal((await get(x.url, 'fz.test.local')).status, 200);
      assert.ok(x.wharf.health.list().every((e) => e.status.state === 'healthy' && !e.status.ejected));
    }
  });
});
