// `npm start` stopped by its npm PID, however: the demo and every instance process it started go
// away with it. Before, `kill <npm pid>` (SIGTERM or SIGKILL) left the demo running under init with
// its instances. Also: the demo killed outright takes its instances with it (their IPC channel).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Started {
  readonly npm: ChildProcess;
  readonly demoPid: number;
  readonly instancePids: number[];
}

/** `npm start` with free ports, until the demo answers; returns the pids of what it started. */
async function npmStart(): Promise<Started> {
  const npm = spawn(
    'npm',
    [
      'start',
      '--',
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--no-traffic',
      '--source',
      'static',
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  npm.stdout!.on('data', (c) => {
    out += c;
  });
  npm.stderr!.on('data', (c) => {
    out += c;
  });
  const deadline = Date.now() + 30_000;
  let admin: string | undefined;
  while (!admin && Date.now() < deadline) {
    admin = /Dashboard +(http:\/\/[\d.:]+)\//.exec(out)?.[1];
    if (npm.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(admin, `the demo did not start:\n${out}`);
  const view = (await (await fetch(`${admin}/api/demo`)).json()) as {
    pid: number;
    instances: { pid: number | null }[];
  };
  const instancePids = view.instances.map((i) => i.pid).filter((p): p is number => p !== null);
  assert.equal(instancePids.length, 8, 'the eight instance processes of the demo');
  return { npm, demoPid: view.pid, instancePids };
}

async function allGone(pids: number[], withinMs: number): Promise<number[]> {
  const deadline = Date.now() + withinMs;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = left.filter(alive);
  }
  for (const pid of left) process.kill(pid, 'SIGKILL'); // never leave them behind, even on failure
  return left;
}

describe('the demo ends with whatever started it', () => {
  it('kill -KILL and kill -TERM of the npm process, and kill -KILL of the demo itself', async () => {
    // Three demos at once (each takes a few seconds to start).
    const [a, b, c] = await Promise.all([npmStart(), npmStart(), npmStart()]);
    assert.ok(alive(a.demoPid) && alive(b.demoPid) && alive(c.demoPid));
    a.npm.kill('SIGKILL');
    b.npm.kill('SIGTERM');
    process.kill(c.demoPid, 'SIGKILL');
    const [leftA, leftB, leftC] = await Promise.all([
      allGone([a.demoPid, ...a.instancePids], 5000),
      allGone([b.demoPid, ...b.instancePids], 5000),
      allGone(c.instancePids, 5000),
    ]);
    c.npm.kill('SIGKILL');
    assert.deepEqual(leftA, [], 'npm SIGKILLed: the demo and its instances are gone');
    assert.deepEqual(leftB, [], 'npm SIGTERMed: the demo and its instances are gone');
    assert.deepEqual(leftC, [], 'the demo SIGKILLed: its instances are gone');
  });
});
