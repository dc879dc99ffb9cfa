// 1 GiB each way through a Wharf child process, with its peak RSS read from /proc: bodies must stream
// with flat memory, never be buffered.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { type Child, runWharf } from '../support/cli.ts';

const GiB = 1024 ** 3;
const CHUNK = Buffer.alloc(1024 * 1024, 97);

function source(bytes: number): Readable {
  let left = bytes;
  return new Readable({
    read() {
      if (left <= 0) return this.push(null);
      const n = Math.min(left, CHUNK.length);
      left -= n;
      this.push(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
    },
  });
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

describe('streaming with flat memory', { skip: process.platform !== 'linux' && 'needs /proc' }, () => {
  let upstream: http.Server;
  let w: Child;
  let port = 0;
  before(async () => {
    upstream = http.createServer((req, res) => {
      if (req.method === 'POST') {
        let n = 0;
        req.on('data', (c: Buffer) => {
          n += c.length;
        });
        req.on('end', () => res.end(String(n)));
        return;
      }
      res.writeHead(200, { 'content-length': String(GiB) });
      source(GiB).pipe(res);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const dir = mkdtempSync(join(tmpdir(), 'wharf-stream-'));
    const file = join(dir, 'c.yaml');
    const up = (upstream.address() as { port: number }).port;
    writeFileSync(
      file,
      `domain: test.local\nprojects:\n  big:\n    instances:\n      b-0: { http: 127.0.0.1:${up} }\n`,
    );
    w = runWharf(['serve', '--config', file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
    port = (await w.started()).port;
  });
  after(async () => {
    w.proc.kill('SIGTERM');
    await w.exit();
    upstream.closeAllConnections();
    upstream.close();
  });

  it('a 1 GiB upload and a 1 GiB download pass; peak RSS stays near 100 MiB', async () => {
    const baseline = peakRssMiB(w.proc.pid!);
    const uploaded = await new Promise<string>((resolve, reject) => {
      const req = http.request(
        {
          port,
          method: 'POST',
          path: '/up',
          headers: { host: 'big.test.local', 'content-length': String(GiB) },
        },
        (res) => {
          let s = '';
          res.on('data', (c) => {
            s += c;
          });
          res.on('end', () => resolve(s));
        },
      );
      req.on('error', reject);
      pipeline(source(GiB), req).catch(reject);
    });
    assert.equal(uploaded, String(GiB), 'upstream received every byte');
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      http
        .get({ port, path: '/down', headers: { host: 'big.test.local' } }, (res) => {
          res.on('data', (c: Buffer) => {
            received += c.length;
          });
          res.on('end', resolve);
          res.on('error', reject);
        })
        .on('error', reject);
    });
    assert.equal(received, GiB);
    const peak = peakRssMiB(w.proc.pid!);
    console.log(`# wharf peak RSS: ${peak.toFixed(1)} MiB (after start ${baseline.toFixed(1)} MiB)`);
    assert.ok(peak < 220, `peak RSS ${peak.toFixed(1)} MiB`);
    assert.ok(peak - baseline < 100, `RSS grew by ${(peak - baseline).toFixed(1)} MiB`);
  });
});
