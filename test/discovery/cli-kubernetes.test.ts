import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { request } from 'undici';
import { endpointSlice, FakeApiServer, service } from '../../src/fake-apiserver/index.ts';
import { runWharf } from '../support/cli.ts';
import { TLS, until } from './helpers.ts';

describe('wharf serve with Kubernetes flags', () => {
  test('--apiserver URL,URL --token-file --ca-file, no config file: syncs, routes, fails over, stops on SIGTERM', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-cli-k8s-'));
    const api = await new FakeApiServer({ tls: TLS, tokens: ['cli-token'] }).start();
    t.after(async () => {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    });
    writeFileSync(join(dir, 'token'), 'cli-token');
    writeFileSync(join(dir, 'ca.crt'), TLS.ca);
    api.apply(service('cli'));
    api.apply(endpointSlice('cli', { ports: { http: 1 }, endpoints: ['127.0.0.1'] }));
    const child = runWharf([
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--domain',
      'k.test',
      '--apiserver',
      `https://127.0.0.1:1,${api.url}`,
      '--token-file',
      join(dir, 'token'),
      '--ca-file',
      join(dir, 'ca.crt'),
    ]);
    t.after(() => child.proc.kill('SIGKILL'));
    const { admin } = await child.started();
    await until(
      async () => (await request(`http://127.0.0.1:${admin}/readyz`)).statusCode === 200,
      10_000,
      'ready',
    );
    const projects = (await (await request(`http://127.0.0.1:${admin}/api/projects`)).body.json()) as {
      projects: { name: string; origin: string }[];
    };
    assert.deepEqual(
      projects.projects.map((p) => `${p.name} ${p.origin}`),
      ['cli default/cli'],
    );
    // The log line travels through a pipe and may arrive just after /readyz turns ready.
    await until(() => /kubernetes: first sync complete/.test(child.stdout), 5_000, 'first-sync log line');
    child.proc.kill('SIGTERM');
    assert.equal(await child.exit(), 0);
  });

  test('usage error without --config or Kubernetes flags', async () => {
    const child = runWharf(['serve']);
    assert.equal(await child.exit(), 2);
    assert.match(child.stderr, /--config FILE, or Kubernetes flags/);
  });
});
