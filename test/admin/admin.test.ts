import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ProjectsDocument } from '../../src/admin/server.ts';
import type { Problem } from '../../src/model/problem.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

describe('admin API', () => {
  let up: TestUpstream;
  let w: Started;
  let secured: Started;
  before(async () => {
    up = await startUpstream('shop-0');
    const projects = { shop: { instances: { 'shop-0': { http: up.address } } } };
    w = await startWharf({ projects });
    secured = await startWharf({ projects, 'admin-token': 'correct-horse-battery-staple' });
  });
  after(async () => {
    await w.stop();
    await secured.stop();
    await up.close();
  });

  it('listens on loopback', () => {
    assert.equal(w.wharf.adminAddress.host, '127.0.0.1');
  });

  it('/healthz and /readyz', async () => {
    const h = await fetch(`${w.admin}/healthz`);
    assert.equal(h.status, 200);
    const r = await fetch(`${w.admin}/readyz`);
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as { status: string }).status, 'ok');
  });

  it('/api/projects has the documented shape', async () => {
    const body = (await (await fetch(`${w.admin}/api/projects`)).json()) as ProjectsDocument;
    assert.equal(body.projects.length, 1);
    const inst = body.projects[0].ports[0].instances[0];
    assert.equal(body.projects[0].name, 'shop');
    assert.equal(body.projects[0].ports[0].name, 'http');
    // What Wharf speaks to the instances (a Service port's appProtocol, else `protocol`; default http1).
    assert.equal(body.projects[0].ports[0].protocol, 'http1');
    assert.equal(inst.name, 'shop-0');
    assert.equal(inst.address, up.address);
    assert.ok(['healthy', 'unhealthy', 'draining', 'pending'].includes(inst.state), inst.state);
  });

  it('/api/problems lists Problems', async () => {
    const body = (await (await fetch(`${w.admin}/api/problems`)).json()) as { problems: Problem[] };
    assert.deepEqual(body, { problems: [] });
  });

  it('a configured token guards the API but not the probes', async () => {
    assert.equal((await fetch(`${secured.admin}/api/projects`)).status, 401);
    assert.equal(
      (await fetch(`${secured.admin}/api/projects`, { headers: { authorization: 'Bearer nope' } })).status,
      401,
    );
    const ok = await fetch(`${secured.admin}/api/projects`, {
      headers: { authorization: 'Bearer correct-horse-battery-staple' },
    });
    assert.equal(ok.status, 200);
    assert.equal((await fetch(`${secured.admin}/healthz`)).status, 200);
    assert.equal((await fetch(`${secured.admin}/readyz`)).status, 200);
  });

  it('unknown admin paths are 404 JSON', async () => {
    const r = await fetch(`${w.admin}/nope`);
    assert.equal(r.status, 404);
    assert.equal(((await r.json()) as { error: string }).error, 'not found');
  });
});

describe('startup failures', () => {
  it('an admin port in use fails the start and releases the proxy listener', async () => {
    const a = await startWharf({ projects: {} });
    try {
      const probe = await import('node:net');
      const free = probe.createServer();
      await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
      const port = (free.address() as { port: number }).port;
      await new Promise<void>((r) => free.close(() => r()));
      await assert.rejects(
        startWharf({
          listen: `127.0.0.1:${port}`,
          admin: `127.0.0.1:${a.wharf.adminAddress.port}`,
          projects: {},
        }),
        /EADDRINUSE/,
      );
      // The proxy port it had bound is free again.
      const again = probe.createServer();
      await new Promise<void>((resolve, reject) => {
        again.once('error', reject);
        again.listen(port, '127.0.0.1', () => resolve());
      });
      await new Promise<void>((r) => again.close(() => r()));
    } finally {
      await a.stop();
    }
  });
});
