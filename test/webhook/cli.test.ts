// `wharf webhook` arguments (as the Deployment passes them) and the process lifetime: start,
// review over HTTPS, SIGTERM, exit 0.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseWebhookArgs } from '../../src/webhook/index.ts';
import { BASE, find, kubeletArgs, parseFile, ROOT } from '../deploy/load.ts';
import { podReview, samplePod } from './helpers.ts';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
if (!hasOpenssl) console.log('# skipping the webhook process test: the openssl CLI is not installed');

describe('wharf webhook arguments', () => {
  it('parses the args of deploy/base/webhook/deployment.yaml', () => {
    const dep = find(parseFile(join(BASE, 'webhook', 'deployment.yaml')), 'Deployment', 'wharf-webhook');
    // As the kubelet runs it: $(WHARF_NODE_LOG_DIR) is the node-log-dir setting.
    const [cmd, ...args] = kubeletArgs(dep.spec.template.spec.containers[0]);
    assert.equal(cmd, 'webhook');
    assert.deepEqual(parseWebhookArgs(args), {
      listen: '0.0.0.0:8443',
      certFile: '/etc/wharf/tls/tls.crt',
      keyFile: '/etc/wharf/tls/tls.key',
      hostPath: '/var/log/services',
      mountPath: '/var/log/service',
      path: '/mutate',
    });
  });

  it('rejects bad usage with an ERR_PARSE_ARGS code', () => {
    const code = (args: string[]) => {
      try {
        parseWebhookArgs(args);
        return 'ok';
      } catch (err) {
        return (err as { code?: string }).code ?? 'no code';
      }
    };
    assert.match(code([]), /^ERR_PARSE_ARGS/);
    assert.match(code(['--cert-file=a']), /^ERR_PARSE_ARGS/);
    assert.match(code(['--cert-file=a', '--key-file=b', '--mount-path=relative']), /^ERR_PARSE_ARGS/);
    assert.match(code(['--cert-file=a', '--key-file=b', '--bogus']), /^ERR_PARSE_ARGS/);
    assert.equal(code(['--cert-file=a', '--key-file=b']), 'ok');
  });
});

describe('wharf webhook process', { skip: !hasOpenssl && 'openssl CLI missing' }, () => {
  it('serves reviews, then stops cleanly on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-webhook-cli-'));
    try {
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1']
          .concat(['-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'])
          .concat(['-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')]),
        { stdio: 'ignore' },
      );
      const script = `
        import { runWebhook } from ${JSON.stringify(join(ROOT, 'src/webhook/index.ts'))};
        const h = await runWebhook(process.argv.slice(2), () => {});
        process.stdout.write(JSON.stringify(h.address) + '\\n');`;
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script, '--', '--listen=127.0.0.1:0'].concat([
          `--cert-file=${join(dir, 'tls.crt')}`,
          `--key-file=${join(dir, 'tls.key')}`,
        ]),
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      const port = await new Promise<number>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('webhook did not start in 30 s')), 30_000);
        child.stdout.once('data', (d: Buffer) => {
          clearTimeout(t);
          resolve(JSON.parse(d.toString()).port);
        });
      });
      const body = JSON.stringify(podReview(samplePod()));
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/mutate',
            ca: readFileSync(join(dir, 'tls.crt')),
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
      assert.equal(status, 200);
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
