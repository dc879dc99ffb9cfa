// Cold start to ready: how long `wharf serve` takes from spawn until `/readyz` answers 200, and its
// resident memory at that moment, for the compiled JavaScript that production runs (bin/wharf.js ->
// dist/) against the same source through tsx (bin/wharf-dev.js), with tsx's transform cache warm
// and cold. A new pod starts with an empty /tmp, so "tsx, cold cache" is what the image paid
// before dist/.
//
//   node --import tsx bench/cold-start.ts [--rounds N]      -> bench/results/cold-start.md
//
// Rounds are interleaved (dist, tsx warm, tsx cold, dist, ...) so machine noise spreads over the
// three alike. Every process is killed at the end of its round; each round is bounded to 20 s.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fmt, median } from './lib/stats.ts';
import { machineInfo } from './lib/sysinfo.ts';

const ROOT = join(import.meta.dirname, '..');
const { values } = parseArgs({ options: { rounds: { type: 'string' }, out: { type: 'string' } } });
const ROUNDS = Number(values.rounds ?? 10);
const OUT = values.out ?? join(ROOT, 'bench', 'results', 'cold-start.md');

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

async function ready(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(200) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

interface Mode {
  readonly name: string;
  readonly bin: string;
  /** A fresh TMPDIR per run: tsx keeps its transform cache under os.tmpdir(). */
  readonly coldCache: boolean;
}

const MODES: Mode[] = [
  { name: 'dist (plain node)', bin: join(ROOT, 'bin', 'wharf.js'), coldCache: false },
  { name: 'tsx, warm cache', bin: join(ROOT, 'bin', 'wharf-dev.js'), coldCache: false },
  { name: 'tsx, cold cache', bin: join(ROOT, 'bin', 'wharf-dev.js'), coldCache: true },
];

async function once(mode: Mode, dir: string): Promise<{ ms: number; rss: number }> {
  const [listen, admin] = [await freePort(), await freePort()];
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    `listen: 127.0.0.1:${listen}\nadmin: 127.0.0.1:${admin}\nprojects:\n` +
      ['a', 'b', 'c']
        .map((p, i) => `  ${p}:\n    instances:\n      ${p}-0: { http: 127.0.0.1:${20000 + i} }\n`)
        .join(''),
  );
  const tmp = mode.coldCache ? mkdtempSync(join(tmpdir(), 'wharf-cold-')) : tmpdir();
  const t0 = performance.now();
  const child: ChildProcess = spawn(process.execPath, [mode.bin, 'serve', '--config', config], {
    env: { ...process.env, TMPDIR: tmp },
    stdio: 'ignore',
  });
  try {
    const deadline = t0 + 20_000;
    while (performance.now() < deadline) {
      if (await ready(admin)) {
        const ms = performance.now() - t0;
        return { ms, rss: rssKiB(child.pid as number) };
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    throw new Error(`${mode.name}: not ready within 20 s`);
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    if (mode.coldCache) rmSync(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const build = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('build failed');
  const dir = mkdtempSync(join(tmpdir(), 'wharf-bench-cold-'));
  const results = new Map<string, { ms: number[]; rss: number[] }>(
    MODES.map((m) => [m.name, { ms: [], rss: [] }]),
  );
  try {
    // One unrecorded run of each first: the page cache holds node_modules and dist/ afterwards, and
    // tsx's warm cache is filled.
    for (const m of MODES) await once(m, dir);
    for (let r = 0; r < ROUNDS; r++) {
      for (const m of MODES) {
        const x = await once(m, dir);
        results.get(m.name)!.ms.push(x.ms);
        results.get(m.name)!.rss.push(x.rss);
      }
      process.stderr.write(`round ${r + 1}/${ROUNDS}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const base = median(results.get(MODES[0].name)!.ms);
  const rows = MODES.map((m) => {
    const x = results.get(m.name)!;
    const ms = median(x.ms);
    return `| ${m.name} | ${fmt(ms, 0)} | ${fmt(Math.min(...x.ms), 0)}-${fmt(Math.max(...x.ms), 0)} | ${fmt(ms / base)} | ${fmt(median(x.rss) / 1024, 0)} |`;
  });
  const report = [
    '# Cold start to ready',
    '',
    `\`node --import tsx bench/cold-start.ts --rounds ${ROUNDS}\`: \`wharf serve\` with three static projects, from`,
    'spawn until `GET /readyz` answers 200 (polled every 2 ms), and VmRSS at that moment. Rounds',
    'interleaved; medians. "cold cache" gives each run an empty TMPDIR, as a new pod has.',
    '',
    ...machineInfo(ROOT).map((l) => `- ${l}`),
    '',
    '| entry | ready ms (median) | min-max | ratio to dist | RSS at ready MiB |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
  writeFileSync(OUT, report);
  process.stdout.write(report);
}

await main();
