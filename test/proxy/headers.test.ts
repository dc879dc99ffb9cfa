import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  downstreamRawHeaders,
  forwardedValue,
  sameName,
  upstreamRequestHeaders,
} from '../../src/proxy/headers.ts';
import { newRequestId } from '../../src/util/request-id.ts';

/** undici hands response headers over as raw latin1 buffers, names as the upstream spelled them. */
const raw = (...kv: string[]): Buffer[] => kv.map((s) => Buffer.from(s, 'latin1'));

describe('downstreamRawHeaders', () => {
  test('drops hop-by-hop headers and those named in Connection, in any case', () => {
    const out = downstreamRawHeaders(
      raw(
        'Content-Type',
        'text/plain',
        'Connection',
        'keep-alive, X-Secret-Hop',
        'Keep-Alive',
        'timeout=5',
        'x-secret-hop',
        'leaks',
        'Transfer-Encoding',
        'chunked',
        'TE',
        'trailers',
        'Trailer',
        'x-sum',
        'Upgrade',
        'h2c',
        'Proxy-Authenticate',
        'Basic',
        'Content-Length',
        '5',
      ),
      false,
      'rid-1',
    );
    assert.deepEqual(out, ['Content-Type', 'text/plain', 'Content-Length', '5', 'x-request-id', 'rid-1']);
  });

  test("keeps the upstream's x-request-id and repeated set-cookie lines", () => {
    const out = downstreamRawHeaders(
      raw('Set-Cookie', 'a=1', 'X-Request-ID', 'from-upstream', 'set-cookie', 'b=2'),
      false,
      'rid-2',
    );
    assert.deepEqual(out, ['Set-Cookie', 'a=1', 'X-Request-ID', 'from-upstream', 'set-cookie', 'b=2']);
  });

  test('the edge hides x-wharf-* from inner tiers; the internal tier passes them on', () => {
    const headers = raw('X-Wharf-Instance', 'shop-0', 'x-wharf-via', 'internal', 'x-wharfish', 'kept');
    assert.deepEqual(downstreamRawHeaders(headers, true, 'r'), ['x-wharfish', 'kept', 'x-request-id', 'r']);
    assert.equal(downstreamRawHeaders(headers, false, 'r').length, 8);
  });

  test('bytes outside ASCII survive unchanged (latin1 both ways)', () => {
    const value = Buffer.from([0x63, 0x61, 0x66, 0xe9]); // "café" in latin1
    const [, v] = downstreamRawHeaders([Buffer.from('x-note'), value], false, 'r');
    assert.deepEqual(Buffer.from(v, 'latin1'), value);
  });
});

describe('upstreamRequestHeaders', () => {
  test('extends x-forwarded-for from trusted hops, drops hop-by-hop and x-wharf-* directives', () => {
    const out = upstreamRequestHeaders(
      [
        'Host',
        'shop.d',
        'Connection',
        'x-drop',
        'x-drop',
        '1',
        'X-Forwarded-For',
        '198.51.100.1',
        'x-wharf-instance',
        'a',
      ],
      {
        clientIp: '10.0.0.1',
        proto: 'http',
        host: 'shop.d',
        requestId: 'r',
        untrusted: false,
        via: 'internal',
      },
    );
    assert.deepEqual(out, [
      'host',
      'shop.d',
      'x-forwarded-for',
      '198.51.100.1, 10.0.0.1',
      'x-forwarded-proto',
      'http',
      'x-forwarded-host',
      'shop.d',
      'forwarded',
      'for=10.0.0.1;host=shop.d;proto=http',
      'x-request-id',
      'r',
      'x-wharf-via',
      'internal',
    ]);
  });

  /** Every header that claims who the client is or how it connected, in mixed spellings. */
  const CLAIMS = [
    'X-Forwarded-For',
    '203.0.113.9',
    'X-Forwarded-Proto',
    'https',
    'X-Forwarded-Host',
    'evil.example',
    'X-Forwarded-Prefix',
    '/admin',
    'X-Forwarded-Port',
    '443',
    'x-forwarded-scheme',
    'https',
    'X-Forwarded-Ssl',
    'on',
    'X-Forwarded',
    'for=203.0.113.9',
    'Forwarded',
    'for=203.0.113.9;proto=https',
    'X-Real-IP',
    '203.0.113.9',
    'True-Client-IP',
    '203.0.113.9',
    'X-Client-IP',
    '203.0.113.9',
    'CF-Connecting-IP',
    '203.0.113.9',
    'Fastly-Client-IP',
    '203.0.113.9',
    'X-Cluster-Client-IP',
    '203.0.113.9',
    'X-Original-Forwarded-For',
    '203.0.113.9',
    'Client-IP',
    '203.0.113.9',
    'X-Envoy-External-Address',
    '203.0.113.9',
  ];

  test('from an untrusted client, every client claim is dropped and the forwarding headers set afresh', () => {
    // The same with and without a Connection header (the two paths through the function).
    for (const connection of [[], ['Connection', 'keep-alive, x-hop']]) {
      const out = upstreamRequestHeaders(['Host', 'shop.d', 'Accept', '*/*', ...connection, ...CLAIMS], {
        clientIp: '198.51.100.7',
        proto: 'https',
        host: 'shop.d',
        requestId: 'r',
        untrusted: true,
      });
      assert.deepEqual(out, [
        'Accept',
        '*/*',
        'host',
        'shop.d',
        'x-forwarded-for',
        '198.51.100.7',
        'x-forwarded-proto',
        'https',
        'x-forwarded-host',
        'shop.d',
        'forwarded',
        'for=198.51.100.7;host=shop.d;proto=https',
        'x-request-id',
        'r',
      ]);
    }
  });

  test('from a trusted hop, the claims are kept and x-forwarded-for and forwarded extended', () => {
    const out = upstreamRequestHeaders(['Host', 'shop.d:8443', ...CLAIMS], {
      clientIp: '10.0.0.1',
      proto: 'http',
      host: 'shop.d',
      requestId: 'r',
      untrusted: false,
    });
    const get = (name: string) => {
      const i = out.indexOf(name);
      return i < 0 ? undefined : out[i + 1];
    };
    assert.equal(get('x-forwarded-for'), '203.0.113.9, 10.0.0.1');
    assert.equal(get('x-forwarded-proto'), 'https');
    assert.equal(get('x-forwarded-host'), 'evil.example');
    assert.equal(get('forwarded'), 'for=203.0.113.9;proto=https, for=10.0.0.1;host="shop.d:8443";proto=http');
    for (const kept of ['X-Forwarded-Prefix', 'X-Real-IP', 'True-Client-IP', 'CF-Connecting-IP', 'Client-IP'])
      assert.equal(get(kept), CLAIMS[CLAIMS.indexOf(kept) + 1], kept);
  });

  test('forwarded: IPv6 clients in brackets and quotes, odd hosts quoted and escaped', () => {
    const out = upstreamRequestHeaders(['Host', 'a"b\\c'], {
      clientIp: '2001:db8::1',
      proto: 'http',
      host: 'x',
      requestId: 'r',
      untrusted: true,
    });
    assert.equal(out[out.indexOf('forwarded') + 1], 'for="[2001:db8::1]";host="a\\"b\\\\c";proto=http');
    assert.equal(forwardedValue('shop.example.com'), 'shop.example.com');
    assert.equal(forwardedValue(''), '""');
  });
});

describe('upstreamRequestHeaders, spelling', () => {
  test("passes other names in the client's spelling and still finds hop-by-hop ones in any case", () => {
    const out = upstreamRequestHeaders(
      ['Accept', '*/*', 'TE', 'gzip', 'Keep-Alive', '5', 'X-Custom', 'v', 'HOST', 'a.d', 'Upgrade', 'x'],
      { clientIp: '10.0.0.1', proto: 'https', host: 'a.d', requestId: 'r', untrusted: true },
    );
    assert.deepEqual(out.slice(0, 6), ['Accept', '*/*', 'X-Custom', 'v', 'host', 'a.d']);
    assert.equal(out.includes('TE') || out.includes('Keep-Alive') || out.includes('Upgrade'), false);
  });

  test('passes `TE: trailers` on (gRPC needs it end to end), and no other TE value', () => {
    const info = {
      clientIp: '10.0.0.1',
      proto: 'http' as const,
      host: 'a.d',
      requestId: 'r',
      untrusted: false,
    };
    assert.deepEqual(upstreamRequestHeaders(['te', 'trailers'], info).slice(0, 2), ['te', 'trailers']);
    assert.deepEqual(upstreamRequestHeaders(['X-A', '1', 'TE', ' Trailers '], info).slice(0, 4), [
      'X-A',
      '1',
      'TE',
      ' Trailers ',
    ]);
    for (const v of ['gzip', 'trailers, deflate', 'trailers;q=0.5'])
      assert.equal(upstreamRequestHeaders(['te', v], info).includes('te'), false, v);
  });
});

describe('sameName', () => {
  test('matches a lowercase name in any case, and nothing else', () => {
    assert.equal(sameName('Content-Length', 'content-length'), true);
    assert.equal(sameName('CONNECTION', 'connection'), true);
    assert.equal(sameName('connection', 'connection'), true);
    assert.equal(sameName('connectio', 'connection'), false);
    assert.equal(sameName('connectionx', 'connection'), false);
    assert.equal(sameName('x-request_id', 'x-request-id'), false);
    // Every other printable character (all token characters among them) stays distinct from '-'
    // and from the letters.
    for (let c = 0x21; c < 0x7f; c++) {
      const ch = String.fromCharCode(c);
      if (/[A-Za-z-]/.test(ch)) continue;
      assert.equal(sameName(`x${ch}a`, 'x-a'), false, `"${ch}" must not match "-"`);
      assert.equal(sameName(`${ch}`, 'a'), false, `"${ch}" must not match a letter`);
    }
  });
});

describe('newRequestId', () => {
  test('32 hex digits, distinct across many pool refills', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const id = newRequestId();
      assert.match(id, /^[0-9a-f]{32}$/);
      ids.add(id);
    }
    assert.equal(ids.size, 2000);
  });
});

describe('downstreamRawHeaders and a plain Connection value', () => {
  test('keep-alive or close alone names no header; anything longer is still parsed', () => {
    const via = (connection: string) =>
      downstreamRawHeaders(
        raw('Connection', connection, 'close', 'a', 'Keep-AliveX', 'b', 'X', 'c'),
        false,
        'r',
      );
    const kept = ['close', 'a', 'Keep-AliveX', 'b', 'X', 'c', 'x-request-id', 'r'];
    assert.deepEqual(via('Keep-Alive'), kept);
    assert.deepEqual(via('CLOSE'), kept);
    assert.deepEqual(via('keep-alivex'), ['close', 'a', 'X', 'c', 'x-request-id', 'r']);
    assert.deepEqual(via('keep-alive, x'), ['close', 'a', 'Keep-AliveX', 'b', 'x-request-id', 'r']);
  });
});
