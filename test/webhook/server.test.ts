// biome-ignore-all lint/suspicious/noExplicitAny: the tests walk untyped pod JSON as the apiserver sends it
// Real AdmissionReview v1 requests over HTTPS to the running webhook, with a certificate made by
// the openssl CLI for this run.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseListen, startWebhook, type WebhookHandle } from '../../src/webhook/index.ts';
import { applyPatch, decodePatch, OPTS, podReview, samplePod } from './helpers.ts';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
if (!hasOpenssl) console.log('# skipping webhook HTTPS tests: the openssl CLI is not installed');

function makeCert(dir: string, name: string, cn: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1']
      .concat(['-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'])
      .concat(['-keyout', key, '-out', cert]),
    { stdio: 'ignore' },
  );
  return { cert, key };
}

interface Reply {
  status: number;
  body: any;
  peerCN?: string;
}

function call(
  port: number,
  ca: Buffer,
  method: string,
  path: string,
  body?: string | Buffer,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        ca,
        headers: { 'content-type': 'application/json' },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        const cn = (res.socket as import('node:tls').TLSSocket).getPeerCertificate?.().subject?.CN;
        const peerCN = Array.isArray(cn) ? cn[0] : cn;
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined, peerCN });
        });
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

describe('wharf webhook over HTTPS', { skip: !hasOpenssl && 'openssl CLI missing' }, () => {
  let dir: string;
  let hook: WebhookHandle;
  let ca: Buffer;
  let certFile: string;
  let keyFile: string;
  const warnings: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wharf-webhook-'));
    const c = makeCert(dir, 'tls', 'wharf-webhook-1');
    certFile = c.cert;
    keyFile = c.key;
    ca = readFileSync(certFile);
    hook = await startWebhook({
      listen: '127.0.0.1:0',
      certFile,
      keyFile,
      reloadIntervalMs: 0,
      maxBodyBytes: 64 * 1024,
      log: (level, msg) => {
        if (level === 'warn') warnings.push(msg);
      },
      ...OPTS,
    });
  });

  after(async () => {
    await hook?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers a Pod CREATE review with a JSONPatch that applies cleanly', async () => {
    const pod = samplePod();
    const review = podReview(pod);
    const r = await call(hook.address.port, ca, 'POST', '/mutate', JSON.stringify(review));
    assert.equal(r.status, 200);
    assert.equal(r.body.apiVersion, 'admission.k8s.io/v1');
    assert.equal(r.body.kind, 'AdmissionReview');
    assert.equal(r.body.response.uid, review.request?.uid);
    assert.equal(r.body.response.allowed, true);
    assert.equal(r.body.response.patchType, 'JSONPatch');
    const out = applyPatch(pod, decodePatch(r.body)!) as any;
    for (const c of [...out.spec.initContainers, ...out.spec.containers]) {
      assert.ok(
        c.volumeMounts.some(
          (m: any) =>
            m.mountPath === '/var/log/service' &&
            m.subPathExpr === '$(WHARF_POD_NAMESPACE)/$(WHARF_POD_NAME)',
        ),
        c.name,
      );
    }

    // Second pass, as with reinvocationPolicy: IfNeeded: nothing left to do.
    const again = await call(hook.address.port, ca, 'POST', '/mutate', JSON.stringify(podReview(out)));
    assert.equal(again.status, 200);
    assert.equal(again.body.response.allowed, true);
    assert.equal(again.body.response.patch, undefined);
  });

  it('leaves an opted-out pod alone', async () => {
    const pod = samplePod() as any;
    pod.metadata.annotations = { 'wharf.io/logs': 'disabled' };
    const r = await call(hook.address.port, ca, 'POST', '/mutate', JSON.stringify(podReview(pod)));
    assert.equal(r.status, 200);
    assert.equal(r.body.response.allowed, true);
    assert.equal(r.body.response.patch, undefined);
  });

  it('allows a non-pod object without a patch', async () => {
    const review = podReview(
      { metadata: { name: 's' }, spec: { ports: [] } },
      {
        kind: { group: '', version: 'v1', kind: 'Service' },
        resource: { group: '', version: 'v1', resource: 'services' },
      },
    );
    const r = await call(hook.address.port, ca, 'POST', '/mutate', JSON.stringify(review));
    assert.equal(r.status, 200);
    assert.equal(r.body.response.allowed, true);
    assert.equal(r.body.response.patch, undefined);
  });

  it('answers 400 to malformed reviews and keeps serving', async () => {
    const port = hook.address.port;
    for (const body of [
      '{not json',
      '[]',
      JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1' }),
    ]) {
      const r = await call(port, ca, 'POST', '/mutate', body);
      assert.equal(r.status, 400, body);
      assert.equal(typeof r.body.error, 'string');
    }
    assert.ok(warnings.length >= 3);
    assert.equal((await call(port, ca, 'POST', '/mutate', Buffer.alloc(70 * 1024, 0x20))).status, 413);
    assert.equal((await call(port, ca, 'GET', '/mutate')).status, 405);
    assert.equal((await call(port, ca, 'POST', '/other', '{}')).status, 404);
    const ok = await call(port, ca, 'POST', '/mutate', JSON.stringify(podReview(samplePod())));
    assert.equal(ok.status, 200);
    assert.equal((await call(port, ca, 'GET', '/healthz')).status, 200);
  });

  it('picks up a renewed certificate without a restart', async () => {
    assert.equal(hook.reloadCertificates(), false, 'nothing changed yet');
    const next = makeCert(dir, 'next', 'wharf-webhook-2');
    copyFileSync(next.key, keyFile);
    copyFileSync(next.cert, certFile);
    assert.equal(hook.reloadCertificates(), true);
    const r = await call(hook.address.port, readFileSync(next.cert), 'GET', '/healthz');
    assert.equal(r.status, 200);
    assert.equal(r.peerCN, 'wharf-webhook-2');
    await assert.rejects(call(hook.address.port, ca, 'GET', '/healthz'), /self.signed|verify|certificate/i);
  });
});

describe('parseListen', () => {
  it('parses host:port forms', () => {
    assert.deepEqual(parseListen('0.0.0.0:8443'), { host: '0.0.0.0', port: 8443 });
    assert.deepEqual(parseListen(':8443'), { host: '0.0.0.0', port: 8443 });
    assert.deepEqual(parseListen('[::]:8443'), { host: '::', port: 8443 });
    assert.throws(() => parseListen('8443'));
    assert.throws(() => parseListen('a:99999'));
  });
});
