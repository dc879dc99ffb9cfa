import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { rawExchange } from '../support/raw.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { type Started, startWharf } from '../support/wharf.ts';

describe('hostile and malformed requests', () => {
  let up: TestUpstream;
  let w: Started;
  before(async () => {
    up = await startUpstream('up');
    w = await startWharf({
      timeouts: { 'request-headers': '400ms' },
      limits: { 'max-header-bytes': 8192, 'max-headers': 50 },
      projects: { p: { instances: { a: { http: up.address } } } },
    });
  });
  after(async () => {
    await w.stop();
    await up.close();
  });

  const connections = () =>
    new Promise<number>((r) => w.wharf.front.listener.getConnections((_e, n) => r(n)));

  it('header section too large -> 431', async () => {
    const raw = await rawExchange(
      w.port,
      `GET / HTTP/1.1\r\nHost: p.test.local\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`,
    );
    assert.match(raw, /^HTTP\/1.1 431/);
  });

  it('absurd header counts -> 431, nothing forwarded', async () => {
    const before = up.seen.length;
    const many = Array.from({ length: 80 }, (_, i) => `X-H${i}: v\r\n`).join('');
    const raw = await rawExchange(w.port, `GET / HTTP/1.1\r\nHost: p.test.local\r\n${many}\r\n`);
    assert.match(raw, /^HTTP\/1.1 431/);
    assert.equal(up.seen.length, before);
  });

  it('Content-Length together with Transfer-Encoding -> 400, never forwarded', async () => {
    const before = up.seen.length;
    const raw = await rawExchange(
      w.port,
      'POST / HTTP/1.1\r\nHost: p.test.local\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: p.test.local\r\n\r\n',
    );
    assert.match(raw, /^HTTP\/1.1 400/);
    assert.equal(raw.match(/HTTP\/1.1/g)?.length, 1, 'the smuggled request got no response');
    assert.equal(up.seen.length, before);
  });

  it('smuggling variants are refused', async () => {
    const before = up.seen.length;
    const variants = [
      'POST / HTTP/1.1\r\nHost: p.test.local\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc',
      'POST / HTTP/1.1\r\nHost: p.test.local\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: p.test.local\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: p.test.local\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: p.test.local\r\nX-Folded: a\r\n b\r\n\r\n',
      'GET / HTTP/1.1\nHost: p.test.local\n\n',
    ];
    for (const v of variants) {
      const raw = await rawExchange(w.port, v);
      assert.match(raw, /^HTTP\/1.1 400/, JSON.stringify(v));
    }
    assert.equal(up.seen.length, before, 'none reached the upstream');
  });

  it('slow clients that never finish their headers are closed after the headers timeout', async () => {
    const t0 = Date.now();
    const raw = await new Promise<string>((resolve) => {
      const s = net.connect(w.port, '127.0.0.1');
      let out = '';
      s.on('data', (c) => {
        out += c;
      });
      s.on('close', () => resolve(out));
      s.write('GET / HTTP/1.1\r\nHost: p.test.local\r\n');
      const drip = setInterval(() => s.write('X-Drip: 1\r\n'), 100);
      s.on('close', () => clearInterval(drip));
      setTimeout(() => s.destroy(), 5000);
    });
    const took = Date.now() - t0;
    assert.ok(took < 2500, `closed after ${took} ms`);
    assert.match(raw, /^HTTP\/1.1 408/);
  });

  it('none of it crashed the proxy or leaked a socket', async () => {
    const ok = await rawExchange(w.port, 'GET / HTTP/1.1\r\nHost: p.test.local\r\nConnection: close\r\n\r\n');
    assert.match(ok, /^HTTP\/1.1 200/);
    const deadline = Date.now() + 2000;
    while ((await connections()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await connections(), 0);
  });
});
