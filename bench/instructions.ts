// `npm run bench:instructions`: user-space instructions per proxied request, counted by valgrind's
// callgrind, for Wharf and for the bare node:http + undici proxy it is built on (undici-floor.ts), over
// plain HTTP and over HTTPS (the edge tier against the same floor on node:https; TLS records included).
//
// Why: on this kind of shared VM the rps of one 10 s run moves by +-30% with the host's load, so
// `npm run bench` cannot tell a 5% change from noise. Instruction counts can (Wharf's repeat within 1%). What they
// leave out is kernel time (the socket syscalls, about half of a request's CPU here, and the same for
// every proxy), so they rank data-plane changes; they do not replace the rps table.
//
// Method: three upstreams, the target under callgrind with `--predictable` (V8 compiles on the main
// thread, so its work is counted and attributable), WARM requests over CONC keep-alive connections
// from this process (undici), counters zeroed, N measured requests on the same connections, counters
// dumped. The measured window is reported whole and without V8's optimizing compiler
// (Runtime_CompileOptimized, CompileLazy), which is still tiering functions up after the warm-up.
//
//   npm run bench:instructions                      # writes bench/results/instructions.md
//   npm run bench:instructions -- --warm 30000 --n 5000 --conc 16 --only 'undici floor,wharf'
//   BENCH_NODE=/path/to/node npm run bench:instructions   # another Node for the targets

import { spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import YAML from 'yaml';
import { ensureTools, which } from './lib/install.ts';
import { start, stop, stopAll, waitForPort } from './lib/procs.ts';
import {
  BENCH_DIR,
  makeCert,
  makeRunDir,
  PORTS,
  REPO_DIR,
  startUpstreams,
  stopUpstreams,
  WHARF_HOST,
} from './lib/targets.ts';

const { values: args } = parseArgs({
  options: {
    warm: { type: 'string', default: '30000' },
    n: { type: 'string', default: '5000' },
    conc: { type: 'string', default: '16' },
    only: { type: 'string' },
    out: { type: 'string' },
  },
});
const WARM = Number(args.warm);
const N = Number(args.n);
const CONC = Number(args.conc);
const PORT = 18250;
const NODE = process.env.BENCH_NODE ?? process.execPath;

interface Row {
  name: string;
  total: number;
  compile: number;
  gc: number;
}

/** `count` GETs over the pool's connections; the number answered 200. */
async function drive(pool: Pool, count: number): Promise<number> {
  let sent = 0;
  let ok = 0;
  const worker = async () => {
    while (sent < count) {
      sent++;
      const r = await pool.request({ path: '/', method: 'GET', headers: { host: WHARF_HOST } });
      await r.body.dump();
      if (r.statusCode === 200) ok++;
    }
  };
  await Promise.all(Array.from({ length: CONC }, worker));
  return ok;
}

/** Inclusive cost of the first function whose name contains `needle`, from callgrind_annotate. */
function inclusive(annotated: string, needle: string): number {
  for (const line of annotated.split('\n')) {
    if (!line.includes(needle)) continue;
    const m = /^\s*([\d,]+)/.exec(line);
    if (m) return Number(m[1].replaceAll(',', ''));
  }
  return 0;
}

interface Target {
  name: string;
  args: string[];
  /** Serve (and drive) HTTPS. */
  tls?: boolean;
  env?: NodeJS.ProcessEnv;
}

async function measure(t: Target, runDir: string): Promise<Row> {
  const name = t.name.replaceAll(' ', '-');
  const outBase = join(runDir, `callgrind.${name}`);
  const target = start(
    name,
    'valgrind',
    [
      '--tool=callgrind',
      '--smc-check=all-non-file',
      '--separate-threads=yes',
      `--callgrind-out-file=${outBase}.%p`,
      NODE,
      '--predictable',
      ...t.args,
    ],
    { cwd: REPO_DIR, logFile: join(runDir, `${name}.log`), env: t.env },
  );
  try {
    await waitForPort(PORT, 120_000, target.exited);
    // One pool for warm-up and measurement: the same connections (and V8's object shapes) stay.
    // HTTPS: the handshakes happen during the warm-up; the measured window is steady-state records.
    const pool = new Pool(`${t.tls ? 'https' : 'http'}://127.0.0.1:${PORT}`, {
      connections: CONC,
      pipelining: 1,
      connect: t.tls ? { rejectUnauthorized: false, servername: WHARF_HOST } : undefined,
    });
    try {
      const warmOk = await drive(pool, WARM);
      spawnSync('callgrind_control', ['-z', String(target.pid)], { timeout: 60_000 });
      const ok = await drive(pool, N);
      spawnSync('callgrind_control', ['-d', String(target.pid)], { timeout: 120_000 });
      if (warmOk !== WARM || ok !== N)
        throw new Error(`${name}: only ${warmOk}/${WARM}, ${ok}/${N} answered 200`);
    } finally {
      await pool.close();
    }
  } finally {
    await stop(target, 20_000);
  }
  // The dump of the main thread ("-01") of the process that served, at the dump (".1"), is the largest.
  const files = readdirSync(runDir)
    .filter((f) => f.startsWith(`callgrind.${name}.`) && /\.1-01$/.test(f))
    .map((f) => join(runDir, f));
  if (files.length === 0) throw new Error(`${name}: no callgrind dump in ${runDir}`);
  const file = files[files.length - 1];
  const ann = spawnSync('callgrind_annotate', ['--inclusive=yes', '--threshold=100', '--auto=no', file], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  }).stdout;
  const total = inclusive(ann, 'PROGRAM TOTALS');
  const compile = inclusive(ann, 'Runtime_CompileOptimized(') + inclusive(ann, 'Builtins_CompileLazy ');
  const gc = inclusive(ann, 'Heap::CollectGarbage(');
  return { name: t.name, total: total / N, compile: compile / N, gc: gc / N };
}

async function main(): Promise<void> {
  const failed = ensureTools(['valgrind']);
  if (failed.size > 0 || !which('callgrind_control')) {
    console.error(`valgrind is not available: ${[...failed.values()].join('; ')}`);
    process.exit(1);
  }
  const runDir = makeRunDir('instructions');
  const cert = makeCert(runDir);
  if (typeof cert === 'string') throw new Error(cert);
  const wharfConfig = (
    file: string,
    extra: Record<string, unknown>,
    project: Record<string, unknown> = {},
  ) => {
    writeFileSync(
      file,
      YAML.stringify({
        listen: `127.0.0.1:${PORT}`,
        admin: '127.0.0.1:18251',
        domain: 'bench.local',
        ...extra,
        projects: {
          bench: {
            'health-path': '/healthz',
            ...project,
            instances: Object.fromEntries(
              PORTS.upstreams.map((p, i) => [`u${i + 1}`, { http: `127.0.0.1:${p}` }]),
            ),
          },
        },
      }),
    );
    return file;
  };
  const plain = wharfConfig(join(runDir, 'wharf.yaml'), { logs: { access: false } });
  const logged = wharfConfig(join(runDir, 'wharf-logs.yaml'), {
    logs: { access: true, dir: join(runDir, 'logs') },
  });
  // Issue 7's row, configured like `npm run bench`'s "wharf edge HTTPS".
  const edge = wharfConfig(
    join(runDir, 'wharf-edge.yaml'),
    {
      logs: { access: false },
      tier: 'edge',
      tls: { certificates: [{ hosts: ['*.bench.local', 'bench.local'], cert: cert.cert, key: cert.key }] },
    },
    { public: true },
  );
  const wharf = (config: string) => [join(REPO_DIR, 'bin/wharf.js'), 'serve', '--config', config];
  const floorArgs = [
    '--import',
    'tsx',
    join(BENCH_DIR, 'undici-floor.ts'),
    String(PORT),
    ...PORTS.upstreams.map(String),
  ];
  const targets: Target[] = [
    { name: 'undici floor', args: floorArgs },
    { name: 'wharf', args: wharf(plain) },
    // Issue 5's row: the access log to a file (metrics are always on).
    { name: 'wharf + access log', args: wharf(logged) },
    {
      name: 'undici floor HTTPS',
      args: floorArgs,
      tls: true,
      env: { ...process.env, FLOOR_CERT: cert.cert, FLOOR_KEY: cert.key },
    },
    { name: 'wharf edge HTTPS', args: wharf(edge), tls: true },
  ];
  const only = args.only?.split(',');
  const ups = await startUpstreams(runDir, false);
  const rows: Row[] = [];
  try {
    for (const t of targets) {
      if (only && !only.includes(t.name)) continue;
      console.error(`[instructions] ${t.name}: ${WARM} warm-up + ${N} measured requests under callgrind`);
      rows.push(await measure(t, runDir));
    }
  } finally {
    await stopUpstreams(ups);
  }
  // Each row against the floor that speaks the same protocol.
  const floorOf = (r: Row) =>
    rows.find((f) => f.name === (r.name.endsWith('HTTPS') ? 'undici floor HTTPS' : 'undici floor'));
  const k = (x: number) => `${(x / 1000).toFixed(1)}k`;
  const node = spawnSync(NODE, ['--version'], { encoding: 'utf8' }).stdout.trim();
  const lines = [
    '# Instructions per proxied request (callgrind)',
    '',
    `Date: ${new Date().toISOString()}. Node ${node}. Run dir: \`${runDir}\`.`,
    `Method: see the header of \`bench/instructions.ts\`. ${WARM} warm-up + ${N} measured GETs over ${CONC} keep-alive connections; 100-byte responses from three node:http upstreams. User space only (the kernel's socket work is not counted).`,
    '',
    '| target | instructions / request | of which V8 optimizing compiler | of which GC | without the compiler | x undici floor (same protocol) |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const steady = r.total - r.compile;
      const floor = floorOf(r);
      const ratio = floor ? (steady / (floor.total - floor.compile)).toFixed(2) : '-';
      return `| ${r.name} | ${k(r.total)} | ${k(r.compile)} | ${k(r.gc)} | ${k(steady)} | ${ratio} |`;
    }),
    '',
  ];
  const plainRow = rows.find((r) => r.name === 'wharf');
  const logRow = rows.find((r) => r.name === 'wharf + access log');
  if (plainRow && logRow) {
    const cost = (logRow.total - logRow.compile) / (plainRow.total - plainRow.compile) - 1;
    lines.push(
      `The access log to a file costs ${(cost * 100).toFixed(1)}% more instructions per request (issue 5's budget: 10% of throughput; the kernel's share of the file writes is not counted).`,
      '',
    );
  }
  const text = lines.join('\n');
  const out =
    args.out ?? (only ? join(runDir, 'instructions.md') : join(BENCH_DIR, 'results', 'instructions.md'));
  writeFileSync(out, text);
  console.log(text);
  console.error(`[instructions] wrote ${out}`);
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
