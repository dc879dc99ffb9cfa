// Malformed upstream answers (issue 20, item 7), from a raw upstream that writes whatever bytes a
// case needs: a response that breaks after its head is counted as the failure it is and cut, so the
// client cannot take a truncated body for whole; an unsolicited 100 Continue ejects nothing; a status
// outside 100-599 is a 502.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { AccessRecord } from '../../src/model/access.ts';
import { type Started, startWharf } from '../support/wharf.ts';

/** What the raw upstream answers, by request path. */
const ANSWERS: Record<string, string> = {
  // chunked framing, broken after a good first chunk
  '/chunk-broken': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n',
  // chunked framing, broken at the first chunk size
  '/chunk-first': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
  // content-length framing, the upstream closes after 5 of 100 bytes
  '/short': 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello',
  '/continue': 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  '/early-hints':
    'HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  '/s600': 'HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok',
  '/s999': 'HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok',
  '/s099': 'HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok',
  '/s000': 'HTTP/1.1 000 Odd\r\nContent-Length: 2\r\n\r\nok',
};
/** Answers after which the upstream closes its side. */
const CLOSE_AFTER = new Set(['/short']);

interface RawUpstream {
  readonly address: string;
  readonly seen: string[];
  close(): void;
}

async function rawUpstream(): Promise<RawUpstream> {
  const seen: string[] = [];
  const server = net.createServer((s) => {
    let buf = '';
    s.on('error', () => {});
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        if (/user-agent: wharf-health/i.test(head)) {
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
          continue;
        }
        const path = head.split(' ')[1];
        seen.push(path);
        s.write(ANSWERS[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
        if (CLOSE_AFTER.has(path)) s.end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    seen,
    close: () => server.close(),
  };
}

/** One keep-alive request; what came back, and whether the server closed the connection. */
function exchange(port: number, head: string, waitMs = 1500): Promise<{ raw: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let raw = '';
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ raw, closed });
    };
    const timer = setTimeout(() => done(false), waitMs);
    s.on('data', (d) => {
      raw += d.toString('latin1');
    });
    s.on('close', () => done(true));
    s.on('error', () => {});
    s.write(head);
  });
}

describe('malformed upstream answers', () => {
  let up: RawUpstream;
  let w: Started;
  const access: AccessRecord[] = [];
  const attempts: [string, number | string][] = [];
  // One project per case over the same raw upstream: passive health is per project's endpoint, so
  // one case's verdict cannot leak into another's.
  const cases = Object.keys(ANSWERS).map((p) => p.slice(1));
  before(async () => {
    up = await rawUpstream();
    w = await startWharf(
      {
        projects: Object.fromEntries(
          cases.map((c) => [c, { instances: { [`${c}-0`]: { http: up.address } } }]),
        ),
      },
      {
        onAccess: (r) => access.push(r),
        onAttempt: (a) => attempts.push([a.project, a.outcome]),
      },
    );
    const until = Date.now() + 3000;
    while (!w.wharf.health.list().every((x) => x.status.state === 'healthy')) {
      if (Date.now() > until) assert.fail('instances not healthy');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  after(async () => {
    await w.stop();
    up.close();
  });

  /**
   * One request for case `c`. Kept alive only where the test asks whether Wharf closed the
   * connection; otherwise the client says close, so the answer ends with it.
   */
  async function run(c: string, keepAlive = false) {
    const close = keepAlive ? '' : 'Connection: close\r\n';
    const res = await exchange(w.port, `GET /${c} HTTP/1.1\r\nHost: ${c}.test.local\r\n${close}\r\n`);
    await new Promise((r) => setTimeout(r, 30));
    return {
      ...res,
      record: access.filter((r) => r.project === c),
      outcomes: attempts.filter(([p]) => p === c).map(([, o]) => o),
      health: w.wharf.health.list().find((x) => x.endpoint.project === c)!.status,
    };
  }

  for (const c of ['chunk-broken', 'chunk-first']) {
    it(`${c}: a chunked body that breaks is cut, logged and counted as invalid-response`, async () => {
      const r = await run(c, true);
      assert.ok(r.closed, 'the client connection is closed');
      assert.doesNotMatch(r.raw, /\r\n0\r\n\r\n$/, 'no last chunk: the client sees the body is cut');
      assert.equal(r.record.length, 1);
      assert.equal(r.record[0].error, 'invalid-response');
      // One outcome for the one attempt, the failure: not the 200 its head promised.
      assert.deepEqual(r.outcomes, ['invalid-response']);
    });
  }

  it('content-length framing: a body cut short closes the client connection before its length', async () => {
    const r = await run('short', true);
    assert.ok(r.closed);
    assert.match(r.raw, /^HTTP\/1.1 200 /);
    assert.match(r.raw, /\r\ncontent-length: 100\r\n/i);
    const body = r.raw.slice(r.raw.indexOf('\r\n\r\n') + 4);
    assert.ok(body.length < 100, `${body.length} body bytes of 100`);
    assert.equal(r.record.length, 1);
    assert.ok(r.record[0].error, 'the access record names the failure');
    assert.equal(r.outcomes.length, 1);
    assert.notEqual(r.outcomes[0], 200);
  });

  it('an unsolicited 100 Continue: a 502 naming it, not retried, and the instance is not ejected', async () => {
    const before = up.seen.filter((p) => p === '/continue').length;
    const r = await run('continue');
    assert.match(r.raw, /^HTTP\/1.1 502 /);
    assert.match(r.raw, /100 Continue/);
    assert.equal(up.seen.filter((p) => p === '/continue').length - before, 1, 'sent once');
    assert.equal(r.record[0].error, 'upstream-100-continue');
    assert.equal(r.health.state, 'healthy');
    assert.equal(r.health.ejected, false);
    // Still served afterwards: nothing was held against the instance.
    assert.match((await run('continue')).raw, /^HTTP\/1.1 502 /);
    assert.equal(
      w.wharf.health.list().find((x) => x.endpoint.project === 'continue')!.status.state,
      'healthy',
    );
  });

  it('other 1xx (103 Early Hints) are skipped and the final answer delivered', async () => {
    const r = await run('early-hints');
    assert.match(r.raw, /^HTTP\/1.1 200 /);
    assert.match(r.raw, /\r\n\r\nok$/);
    assert.deepEqual(r.outcomes, [200]);
  });

  for (const c of ['s600', 's999', 's099', 's000']) {
    it(`status ${c.slice(1)} (outside 100-599) is answered 502 and counted as invalid-response`, async () => {
      const r = await run(c);
      assert.match(r.raw, /^HTTP\/1.1 502 /);
      assert.match(r.raw, /"reason":"the upstream sent an invalid HTTP response"/);
      assert.equal(r.record[0].status, 502);
      assert.equal(r.record[0].error, 'invalid-response');
      assert.deepEqual(r.outcomes, ['invalid-response']);
    });
  }
});
