// The PROXY protocol header (versions 1 and 2, haproxy's proxy-protocol.txt) that a TCP load balancer
// sends before the client's own bytes, so the receiver learns the client's address. Pure: bytes in,
// a verdict out; the socket side is proxy-accept.ts.
//
// The parser is fed the bytes received so far and answers as soon as it can: `incomplete` while a
// prefix of a valid header could still follow, `invalid` at the first byte that cannot belong to one
// (so a client that is not a load balancer is refused without waiting), or the header and its length.

import { isIPv4, isIPv6 } from 'node:net';

/** v2's 12-byte signature: `\r\n\r\n\0\r\nQUIT\n`. */
export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V1_PREFIX = Buffer.from('PROXY ');
/** The longest v1 line, CRLF included (the spec's 107 bytes). */
export const V1_MAX = 107;
/** v2: 16 fixed bytes plus at most 65535 of addresses and TLVs. */
export const V2_MAX = 16 + 0xffff;

export interface Peer {
  readonly address: string;
  readonly port: number;
}

export type ProxyHeader =
  /** A proxied connection: `source` is the client. */
  | {
      readonly command: 'proxy';
      readonly version: 1 | 2;
      readonly family: 'tcp4' | 'tcp6';
      readonly source: Peer;
      readonly destination: Peer;
    }
  /**
   * No client address to take: v2 LOCAL (the balancer's own health check), v1 UNKNOWN, or a v2
   * family without an IP address (UNSPEC, UNIX). The spec says to use the connection's own addresses.
   */
  | { readonly command: 'local'; readonly version: 1 | 2 };

export type ParseResult =
  | { readonly state: 'incomplete' }
  | { readonly state: 'invalid'; readonly reason: string }
  | { readonly state: 'done'; readonly header: ProxyHeader; readonly length: number };

const INCOMPLETE: ParseResult = { state: 'incomplete' };
const invalid = (reason: string): ParseResult => ({ state: 'invalid', reason });

/** True while `buf` agrees with `prefix` on every byte both have. */
function agrees(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length === 0) return INCOMPLETE;
  if (agrees(buf, V2_SIGNATURE)) return buf.length < V2_SIGNATURE.length ? INCOMPLETE : parseV2(buf);
  if (agrees(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? INCOMPLETE : parseV1(buf);
  return invalid('no PROXY protocol header');
}

/** A port as v1 writes it: decimal, no sign, no leading zero. */
function port(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 0xffff ? n : undefined;
}

/** The canonical text of an IPv6 address (lowercase, zeros compressed), the form node reports. */
function canonicalIPv6(text: string): string {
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

function parseV1(buf: Buffer): ParseResult {
  // Printable ASCII up to CRLF: anything else is refused at the byte it appears.
  let end = -1;
  for (let i = 0; i < buf.length && i < V1_MAX; i++) {
    const c = buf[i];
    if (c === 0x0d && i + 1 < buf.length) {
      if (buf[i + 1] !== 0x0a) return invalid('v1 header has a CR without LF');
      end = i;
      break;
    }
    if (c !== 0x0d && (c < 0x20 || c > 0x7e)) return invalid('v1 header has a control or non-ASCII byte');
  }
  if (end < 0) return buf.length >= V1_MAX ? invalid('v1 header longer than 107 bytes') : INCOMPLETE;
  if (end + 2 > V1_MAX) return invalid('v1 header longer than 107 bytes');
  const line = buf.toString('latin1', 0, end);
  const fields = line.split(' ');
  // "PROXY UNKNOWN" may be followed by anything, which the receiver ignores.
  if (fields[1] === 'UNKNOWN')
    return { state: 'done', header: { command: 'local', version: 1 }, length: end + 2 };
  if (fields.length !== 6) return invalid('v1 header needs: PROXY TCP4|TCP6 src dst srcport dstport');
  const [, proto, src, dst, sport, dport] = fields;
  if (proto !== 'TCP4' && proto !== 'TCP6')
    return invalid(`v1 protocol "${proto}" is not TCP4, TCP6 or UNKNOWN`);
  const isIP = proto === 'TCP4' ? isIPv4 : isIPv6;
  if (!isIP(src) || !isIP(dst)) return invalid(`v1 addresses are not ${proto === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  const sp = port(sport);
  const dp = port(dport);
  if (sp === undefined || dp === undefined) return invalid('v1 ports must be decimal 0-65535');
  const norm = proto === 'TCP4' ? (a: string) => a : (a: string) => ipv6(ipv6Bytes(a), 0);
  return {
    state: 'done',
    header: {
      command: 'proxy',
      version: 1,
      family: proto === 'TCP4' ? 'tcp4' : 'tcp6',
      source: { address: norm(src), port: sp },
      destination: { address: norm(dst), port: dp },
    },
    length: end + 2,
  };
}

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function ipv6(b: Buffer, at: number): string {
  // An IPv4-mapped address is the IPv4 client itself: report it the way IPv4 sockets are reported.
  if (b.subarray(at, at + 10).every((x) => x === 0) && b[at + 10] === 0xff && b[at + 11] === 0xff)
    return ipv4(b, at + 12);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(at + i).toString(16));
  return canonicalIPv6(groups.join(':'));
}

function parseV2(buf: Buffer): ParseResult {
  if (buf.length < 16) return INCOMPLETE;
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) return invalid(`v2 version ${verCmd >> 4} is not 2`);
  const command = verCmd & 0x0f;
  if (command > 1) return invalid(`v2 command ${command} is neither LOCAL nor PROXY`);
  const famProto = buf[13];
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  const len = buf.readUInt16BE(14);
  const total = 16 + len;
  if (family > 3 || transport > 2)
    return invalid(`v2 family/transport byte 0x${famProto.toString(16)} is unknown`);
  const need = [0, 12, 36, 216][family];
  if (len < need)
    return invalid(`v2 address block of ${len} bytes is shorter than its family needs (${need})`);
  if (buf.length < total) return INCOMPLETE;
  // LOCAL: the balancer speaking for itself (health checks); the addresses, if any, are ignored.
  if (command === 0) return { state: 'done', header: { command: 'local', version: 2 }, length: total };
  if (family === 0 || family === 3)
    return { state: 'done', header: { command: 'local', version: 2 }, length: total };
  if (transport !== 1) return invalid('v2 PROXY over a datagram transport on a stream listener');
  const header: ProxyHeader =
    family === 1
      ? {
          command: 'proxy',
          version: 2,
          family: 'tcp4',
          source: { address: ipv4(buf, 16), port: buf.readUInt16BE(24) },
          destination: { address: ipv4(buf, 20), port: buf.readUInt16BE(26) },
        }
      : {
          command: 'proxy',
          version: 2,
          family: 'tcp6',
          source: { address: ipv6(buf, 16), port: buf.readUInt16BE(48) },
          destination: { address: ipv6(buf, 32), port: buf.readUInt16BE(50) },
        };
  return { state: 'done', header, length: total };
}

/** Builds a header (tests, and the reference for what the parser accepts). */
export function encodeProxyHeader(
  version: 1 | 2,
  h: { source: Peer; destination: Peer } | 'local',
  tlvs: Buffer = Buffer.alloc(0),
): Buffer {
  if (version === 1) {
    if (h === 'local') return Buffer.from('PROXY UNKNOWN\r\n');
    const fam = isIPv4(h.source.address) ? 'TCP4' : 'TCP6';
    return Buffer.from(
      `PROXY ${fam} ${h.source.address} ${h.destination.address} ${h.source.port} ${h.destination.port}\r\n`,
    );
  }
  if (h === 'local') {
    const b = Buffer.alloc(16);
    V2_SIGNATURE.copy(b);
    b[12] = 0x20;
    b.writeUInt16BE(tlvs.length, 14);
    return Buffer.concat([b, tlvs]);
  }
  const v4 = isIPv4(h.source.address);
  const addrLen = v4 ? 12 : 36;
  const b = Buffer.alloc(16 + addrLen);
  V2_SIGNATURE.copy(b);
  b[12] = 0x21;
  b[13] = v4 ? 0x11 : 0x21;
  b.writeUInt16BE(addrLen + tlvs.length, 14);
  const put = (addr: string, at: number) => {
    if (!v4) ipv6Bytes(addr).copy(b, at);
    else for (const [i, x] of addr.split('.').entries()) b[at + i] = Number(x);
  };
  put(h.source.address, 16);
  put(h.destination.address, v4 ? 20 : 32);
  b.writeUInt16BE(h.source.port, v4 ? 24 : 48);
  b.writeUInt16BE(h.destination.port, v4 ? 26 : 50);
  return Buffer.concat([b, tlvs]);
}

function ipv6Bytes(addr: string): Buffer {
  const full = canonicalIPv6(addr);
  const [head, tail] = full.includes('::') ? full.split('::') : [full, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) b.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return b;
}
