// The PROXY protocol parser (v1 and v2): the spec's examples, every edge the spec names, and
// properties over random headers and random bytes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeProxyHeader, parseProxyHeader, V1_MAX, V2_SIGNATURE } from '../../src/proxy/proxy-protocol.ts';

const v4 = {
  source: { address: '203.0.113.7', port: 51234 },
  destination: { address: '192.0.2.20', port: 443 },
};
const v6 = {
  source: { address: '2001:db8::7', port: 40000 },
  destination: { address: '2001:db8::20', port: 8443 },
};

function done(buf: Buffer) {
  const r = parseProxyHeader(buf);
  assert.equal(r.state, 'done', JSON.stringify(r));
  return r as Extract<typeof r, { state: 'done' }>;
}
function invalid(buf: Buffer | string): string {
  const r = parseProxyHeader(Buffer.isBuffer(buf) ? buf : Buffer.from(buf, 'latin1'));
  assert.equal(r.state, 'invalid', `${JSON.stringify(String(buf))}: ${JSON.stringify(r)}`);
  return (r as { reason: string }).reason;
}

/** A v2 header by hand: version/command byte, family/transport byte, payload. */
function v2(verCmd: number, famProto: number, payload: Buffer, lengthField = payload.length): Buffer {
  const head = Buffer.alloc(16);
  V2_SIGNATURE.copy(head);
  head[12] = verCmd;
  head[13] = famProto;
  head.writeUInt16BE(lengthField, 14);
  return Buffer.concat([head, payload]);
}

describe('PROXY protocol v1', () => {
  it('TCP4 and TCP6 lines give the client address and the header length', () => {
    const line = 'PROXY TCP4 203.0.113.7 192.0.2.20 51234 443\r\n';
    const r = done(Buffer.from(`${line}GET / HTTP/1.1\r\n`));
    assert.equal(r.length, line.length);
    assert.deepEqual(r.header, { command: 'proxy', version: 1, family: 'tcp4', ...v4 });
    const r6 = done(Buffer.from('PROXY TCP6 2001:DB8:0:0:0:0:0:7 2001:db8::20 40000 8443\r\n'));
    assert.deepEqual(r6.header, { command: 'proxy', version: 1, family: 'tcp6', ...v6 }, 'canonical IPv6');
    const mapped = done(Buffer.from('PROXY TCP6 ::ffff:203.0.113.7 ::1 1 2\r\n'));
    assert.equal(mapped.header.command === 'proxy' && mapped.header.source.address, '203.0.113.7');
  });

  it('UNKNOWN (with or without the rest of the line) means: use the connection itself', () => {
    assert.deepEqual(done(Buffer.from('PROXY UNKNOWN\r\n')).header, { command: 'local', version: 1 });
    const r = done(Buffer.from('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\nX'));
    assert.equal(r.length, 'PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'.length);
  });

  it('is incomplete on every strict prefix and refuses at the first impossible byte', () => {
    const line = Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.20 51234 443\r\n');
    for (let i = 0; i < line.length; i++)
      assert.equal(parseProxyHeader(line.subarray(0, i)).state, 'incomplete', `prefix ${i}`);
    // An HTTP request is refused at once, not after 107 bytes.
    assert.match(invalid('GET / HTTP/1.1\r\n'), /no PROXY protocol header/);
    assert.match(invalid('PUT'), /no PROXY/);
    assert.match(invalid('PROPFIND / HTTP/1.1'), /no PROXY/);
    assert.equal(parseProxyHeader(Buffer.from('PROX')).state, 'incomplete');
  });

  it('refuses malformed lines', () => {
    assert.match(invalid(`PROXY TCP4 ${'1'.repeat(120)}`), /longer than 107/);
    assert.match(invalid(`PROXY TCP4 1.2.3.4 5.6.7.8 1 ${'2'.repeat(V1_MAX)}\r\n`), /longer than 107/);
    // 106 bytes then CRLF: 108 in all, one over.
    const long = `PROXY UNKNOWN ${'x'.repeat(V1_MAX - 15)}`;
    assert.equal(long.length, V1_MAX - 1);
    assert.match(invalid(`${long}\r\n`), /longer than 107/);
    // 105 bytes then CRLF: exactly the limit.
    assert.equal(done(Buffer.from(`${long.slice(0, -1)}\r\n`)).length, V1_MAX);
    assert.match(invalid('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), /needs/);
    assert.match(invalid('PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n'), /needs/);
    assert.match(invalid('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), /not TCP4/);
    assert.match(invalid('PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'), /not IPv4/);
    assert.match(invalid('PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n'), /not IPv4/);
    assert.match(invalid('PROXY TCP6 1.2.3.4 ::1 1 2\r\n'), /not IPv6/);
    assert.match(invalid('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), /ports/);
    assert.match(invalid('PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n'), /ports/);
    assert.match(invalid('PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n'), /ports/);
    assert.match(invalid('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), /control/);
    assert.match(invalid('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX'), /CR without LF/);
    assert.match(invalid('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n'), /control/);
    assert.match(invalid('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n'), /needs/);
  });
});

describe('PROXY protocol v2', () => {
  it('INET and INET6 PROXY headers give the client address; TLVs are skipped', () => {
    const h4 = encodeProxyHeader(2, v4);
    assert.equal(h4.length, 28);
    const r = done(Buffer.concat([h4, Buffer.from('\x16\x03\x01')]));
    assert.equal(r.length, 28);
    assert.deepEqual(r.header, { command: 'proxy', version: 2, family: 'tcp4', ...v4 });
    // PP2_TYPE_AUTHORITY (0x02) "example.com" and a NOOP: bytes the parser steps over.
    const tlvs = Buffer.concat([
      Buffer.from([0x02, 0, 11]),
      Buffer.from('example.com'),
      Buffer.from([0x04, 0, 0]),
    ]);
    const h6 = encodeProxyHeader(2, v6, tlvs);
    const r6 = done(h6);
    assert.equal(r6.length, 16 + 36 + tlvs.length);
    assert.deepEqual(r6.header, { command: 'proxy', version: 2, family: 'tcp6', ...v6 });
  });

  it('LOCAL, UNSPEC and UNIX mean: use the connection itself', () => {
    assert.deepEqual(done(encodeProxyHeader(2, 'local')).header, { command: 'local', version: 2 });
    // LOCAL with an address block (some balancers send one): ignored, but its bytes are consumed.
    const local = v2(0x20, 0x11, Buffer.alloc(12, 7));
    assert.equal(done(local).length, 28);
    assert.equal(done(v2(0x21, 0x00, Buffer.alloc(0))).header.command, 'local');
    assert.equal(done(v2(0x21, 0x31, Buffer.alloc(216))).header.command, 'local');
  });

  it('IPv4-mapped INET6 sources are reported as IPv4', () => {
    const b = Buffer.alloc(36);
    b[10] = 0xff;
    b[11] = 0xff;
    b.set([198, 51, 100, 9], 12);
    const r = done(v2(0x21, 0x21, b));
    assert.equal(r.header.command === 'proxy' && r.header.source.address, '198.51.100.9');
  });

  it('is incomplete on every strict prefix', () => {
    const h = encodeProxyHeader(2, v6, Buffer.from([0x04, 0, 2, 0, 0]));
    for (let i = 0; i < h.length; i++)
      assert.equal(parseProxyHeader(h.subarray(0, i)).state, 'incomplete', `prefix ${i}`);
  });

  it('refuses what the spec does not allow', () => {
    assert.match(invalid(v2(0x11, 0x11, Buffer.alloc(12))), /version 1 is not 2/);
    assert.match(invalid(v2(0x22, 0x11, Buffer.alloc(12))), /command 2/);
    assert.match(invalid(v2(0x21, 0x41, Buffer.alloc(12))), /unknown/);
    assert.match(invalid(v2(0x21, 0x13, Buffer.alloc(12))), /unknown/);
    assert.match(invalid(v2(0x21, 0x11, Buffer.alloc(8))), /shorter than its family needs \(12\)/);
    assert.match(invalid(v2(0x21, 0x21, Buffer.alloc(12))), /needs \(36\)/);
    assert.match(invalid(v2(0x21, 0x12, Buffer.alloc(12))), /datagram/);
    // A wrong signature byte anywhere in the 12 is refused at that byte.
    for (let i = 0; i < 12; i++) {
      const b = Buffer.from(V2_SIGNATURE);
      b[i] ^= 0x40;
      assert.equal(parseProxyHeader(b.subarray(0, i + 1)).state, 'invalid', `signature byte ${i}`);
    }
  });
});

describe('PROXY protocol properties', () => {
  const ipv4 = fc.ipV4();
  const ipv6 = fc.ipV6();
  const port = fc.integer({ min: 0, max: 65535 });
  const peers = fc.oneof(
    fc.record({
      source: fc.record({ address: ipv4, port }),
      destination: fc.record({ address: ipv4, port }),
    }),
    fc.record({
      source: fc.record({ address: ipv6, port }),
      destination: fc.record({ address: ipv6, port }),
    }),
  );

  it('any encoded header parses back to its peers, whatever follows it', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1 as const, 2 as const),
        peers,
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 40 }),
        (version, p, tlv, tail) => {
          const h = encodeProxyHeader(version, p, version === 2 ? Buffer.from(tlv) : undefined);
          const r = parseProxyHeader(Buffer.concat([h, Buffer.from(tail)]));
          assert.equal(r.state, 'done');
          if (r.state !== 'done' || r.header.command !== 'proxy') return;
          assert.equal(r.length, h.length);
          const norm = (a: string) => (a.includes(':') ? new URL(`http://[${a}]`).hostname.slice(1, -1) : a);
          const mapped = (a: string) => (/^::ffff:[0-9a-f]+:[0-9a-f]+$/.test(a) ? undefined : a);
          const want = norm(p.source.address);
          if (mapped(want)) assert.equal(r.header.source.address, want);
          assert.equal(r.header.source.port, p.source.port);
          assert.equal(r.header.destination.port, p.destination.port);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('random bytes never throw; a verdict never changes as more bytes arrive', () => {
    const starts = fc.oneof(
      fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a)),
      fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.concat([V2_SIGNATURE, Buffer.from(a)])),
      fc.string({ maxLength: 110 }).map((s) => Buffer.from(`PROXY ${s}`, 'latin1')),
    );
    fc.assert(
      fc.property(starts, fc.uint8Array({ maxLength: 40 }), (buf, more) => {
        const r = parseProxyHeader(buf);
        const later = parseProxyHeader(Buffer.concat([buf, Buffer.from(more)]));
        if (r.state === 'done') {
          assert.ok(r.length <= buf.length);
          assert.deepEqual(later, r);
        }
        if (r.state === 'invalid') assert.equal(later.state, 'invalid');
      }),
      { numRuns: 2000 },
    );
  });

  it('an incomplete verdict always fits in the largest header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (a) => {
        const buf = Buffer.concat([Buffer.from('PROXY '), Buffer.from(a)]);
        const r = parseProxyHeader(buf);
        if (r.state === 'incomplete') assert.ok(buf.length < V1_MAX);
      }),
      { numRuns: 1000 },
    );
  });
});
