import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runWharf } from '../support/cli.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { get } from '../support/wharf.ts';

const dir = mkdtempSync(join(tmpdir(), 'wharf-cli-'));
const ups: TestUpstream[] = [];
after(async () => {
  for (const u of ups) await u.close();
});

describe('wharf CLI', () => {
  it('--help and --version', async () => {
    const h = runWharf(['--help']);
    assert.equal(await h.exit(), 0);
    assert.match(h.stdout, /serve +Run the proxy/);
    assert.match(h.stdout, /npx wharf/);
    const v = runWharf(['--version']);
    assert.equal(await v.exit(), 0);
    assert.match(v.stdout, /^wharf \d+\.\d+\.\d+/);
  });

  it('check-config: ok exits 0; errors name the field path and exit 2', async () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(
      good,
      'domain: apps.example.com\nprojects:\n  shop:\n    instances:\n      shop-0: { http: 127.0.0.1:1 }\n',
    );
    const ok = runWharf(['check-config', good]);
    assert.equal(await ok.exit(), 0, ok.stderr);
    assert.match(ok.stdout, /ok/);

    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      [
        'domain: apps.example.com',
        'listen: nowhere',
        'colour: blue',
        'projects:',
        '  shop:',
        '    health-interval: 5',
        '    affinity: sometimes',
        '    instances:',
        '      shop-0: { http: 127.0.0.1:99999 }',
      ].join('\n'),
    );
    const r = runWharf(['check-config', bad]);
    assert.equal(await r.exit(), 2);
    assert.match(r.stderr, /unknown key\(s\) "colour": expected one of listen, admin/);
    assert.match(r.stderr, /listen: "nowhere": expected host:port such as 127\.0\.0\.1:8080/);
    const fixed = join(dir, 'bad2.yaml');
    writeFileSync(
      fixed,
      'listen: nowhere\nprojects:\n  shop:\n    health-interval: 5\n    affinity: sometimes\n    instances:\n      shop-0: { http: 127.0.0.1:99999 }\n',
    );
    const r2 = runWharf(['check-config', fixed]);
    assert.equal(await r2.exit(), 2);
    assert.match(r2.stderr, /listen: "nowhere": expected host:port/);
    assert.match(r2.stderr, /projects\.shop\.health-interval: "5": expected a duration/);
    assert.match(r2.stderr, /projects\.shop\.affinity: "sometimes": expected none, cookie/);
    assert.match(
      r2.stderr,
      /projects\.shop\.instances\.shop-0\.http: "127\.0\.0\.1:99999": port 99999 is out of range/,
    );
  });

  it('serve refuses to start half-configured', async () => {
    const bad = join(dir, 'serve-bad.yaml');
    writeFileSync(bad, 'tier: middle\n');
    const r = runWharf(['serve', '--config', bad, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
    assert.equal(await r.exit(), 2);
    assert.match(r.stderr, /tier/);
    const u = runWharf(['serve']);
    assert.equal(await u.exit(), 2);
    assert.match(u.stderr, /--config/);
  });

  it('reloads on change and on SIGHUP without dropping a connection; a bad file keeps the old config', async () => {
    const a = await startUpstream('a');
    const b = await startUpstream('b');
    ups.push(a, b);
    const file = join(dir, 'live.yaml');
    const cfg = (name: string, addr: string) =>
      `domain: test.local\nprojects:\n  ${name}:\n    instances:\n      i-0: { http: ${addr} }\n`;
    writeFileSync(file, cfg('one', a.address));
    const w = runWharf(['serve', '--config', file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
    try {
      const { port } = await w.started();
      const url = `http://127.0.0.1:${port}`;
      assert.equal((await get(url, 'one.test.local')).status, 200);

      // A keep-alive connection stays open across reloads.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const viaAgent = () =>
        new Promise<number>((resolve, reject) => {
          http
            .get({ port, agent, headers: { host: 'one.test.local' } }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            })
            .on('error', reject);
        });
      assert.equal(await viaAgent(), 200);
      let sockets = 0;
      agent.on('free', () => sockets++);

      // Atomic replace, as editors and ConfigMaps do.
      writeFileSync(
        `${file}.tmp`,
        `${cfg('one', a.address)}  two:\n    instances:\n      i-0: { http: ${b.address} }\n`,
      );
      renameSync(`${file}.tmp`, file);
      let deadline = Date.now() + 3000;
      while ((await get(url, 'two.test.local')).status !== 200 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal((await get(url, 'two.test.local')).body, 'b GET /');
      assert.equal(await viaAgent(), 200, 'the old keep-alive connection still works');

      writeFileSync(file, 'projects: [oops\n');
      deadline = Date.now() + 3000;
      while (!/config reload rejected/.test(w.stdout) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(w.stdout, /config reload rejected/);
      assert.equal((await get(url, 'two.test.local')).status, 200, 'old config keeps serving');

      writeFileSync(file, cfg('three', b.address));
      w.proc.kill('SIGHUP');
      deadline = Date.now() + 3000;
      while ((await get(url, 'three.test.local')).status !== 200 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal((await get(url, 'three.test.local')).status, 200);
      assert.equal((await get(url, 'one.test.local')).status, 404);
      agent.destroy();
      void sockets;
    } finally {
      w.proc.kill('SIGTERM');
      await w.exit();
    }
  });

  it('SIGTERM lets in-flight requests finish, then exits 0', async () => {
    const slow = await startUpstream('slow', (_req, res) => setTimeout(() => res.end('finished'), 700));
    ups.push(slow);
    const file = join(dir, 'drain.yaml');
    writeFileSync(
      file,
      `domain: test.local\nprojects:\n  s:\n    instances:\n      i-0: { http: ${slow.address} }\n`,
    );
    const w = runWharf(['serve', '--config', file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
    const { port } = await w.started();
    const inflight = get(`http://127.0.0.1:${port}`, 's.test.local');
    await new Promise((r) => setTimeout(r, 200));
    w.proc.kill('SIGTERM');
    const r = await inflight;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'finished');
    assert.equal(await w.exit(), 0);
    await assert.rejects(get(`http://127.0.0.1:${port}`, 's.test.local'), 'no longer accepting');
  });
});
