// A non-root Wharf whose log directory belongs to root (what the kubelet creates for a hostPath on a
// new node) keeps serving: its lines go to stdout, /api/problems says why, and the files are used
// once the directory is fixed (tried every 30 s, or at once on SIGUSR1). The process is the real
// `wharf serve` (bin/wharf.js), and the error is a real EACCES: as root the test runs Wharf as
// nobody (uid 65534) in a directory root owns; otherwise it takes the write bit off the directory.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runWharf } from '../support/cli.ts';

const NOBODY = { uid: 65534, gid: 65534 };
const root = process.getuid?.() === 0;

async function getJson(
  url: string,
  host?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  // node:http, not fetch: fetch does not let a request set Host.
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: host ? { host } : {}, timeout: 5000 }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timeout`)));
    req.on('error', reject);
  });
}

describe('log directory not writable', () => {
  let base: string;
  let upstream: http.Server;
  before(async () => {
    base = mkdtempSync(join(tmpdir(), 'wharf-logdir-'));
    chmodSync(base, 0o755);
    upstream = http.createServer((_req, res) => res.end(JSON.stringify({ ok: true })));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    await new Promise((r) => upstream.close(r));
    rmSync(base, { recursive: true, force: true });
  });

  it('serves, logs to stdout, reports a Problem, and uses the files once they can be written', async () => {
    const logs = join(base, 'logs');
    mkdirSync(logs, { mode: 0o755 });
    if (!root) chmodSync(logs, 0o555);
    const config = join(base, 'config.yaml');
    const port = (upstream.address() as AddressInfo).port;
    writeFileSync(
      config,
      `projects:\n  a:\n    instances:\n      a-0: { http: 127.0.0.1:${port} }\nlogs:\n  dir: ${logs}\n`,
      { mode: 0o644 },
    );
    const w = runWharf(
      ['serve', '--config', config, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'],
      {},
      root ? NOBODY : undefined,
    );
    try {
      const { port: front, admin } = await w.started();
      const problems = await getJson(`http://127.0.0.1:${admin}/api/problems`);
      const p = (problems.body.problems as { code: string; message: string }[]).find(
        (x) => x.code === 'log-dir-unwritable',
      );
      assert.ok(p, JSON.stringify(problems.body));
      assert.match(p.message, /EACCES/);

      const res = await getJson(`http://127.0.0.1:${front}/`, 'a.wharf.local');
      assert.equal(res.status, 200);
      // The access line went to stdout.
      const deadline = Date.now() + 5000;
      while (!w.stdout.includes('"log":"access"') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      assert.match(w.stdout, /"log":"access".*"host":"a\.wharf\.local"/);

      // The operator fixes the directory; SIGUSR1 makes Wharf try at once (else within 30 s).
      if (root) chownSync(logs, NOBODY.uid, NOBODY.gid);
      else chmodSync(logs, 0o755);
      w.proc.kill('SIGUSR1');
      let left: unknown[] = [p];
      while (left.length > 0 && Date.now() < deadline + 5000) {
        await new Promise((r) => setTimeout(r, 20));
        const now = await getJson(`http://127.0.0.1:${admin}/api/problems`);
        left = (now.body.problems as { code: string }[]).filter((x) => x.code === 'log-dir-unwritable');
      }
      assert.deepEqual(left, [], 'the Problem is resolved');
      assert.equal((await getJson(`http://127.0.0.1:${front}/x`, 'a.wharf.local')).status, 200);
      w.proc.kill('SIGTERM');
      assert.equal(await w.exit(), 0);
      const access = readFileSync(join(logs, 'access.log'), 'utf8');
      assert.match(access, /"path":"\/x"/);
    } finally {
      w.proc.kill('SIGKILL');
    }
  });
});
