// PROXY protocol on a listener: a plain TCP server accepts each connection, reads the PROXY header
// from trusted peers, records the client address it carries (util/client-address.ts), puts back the
// bytes that followed the header and hands the socket to the HTTP or TLS server with
// `emit('connection')`, exactly as if that server had accepted it.
//
// Who may send a header: only peers in `trusted-proxies`. From them the header is required: a
// missing, malformed or late one closes the connection (a balancer configured without the protocol
// would otherwise make every client look like the balancer). Other peers are handed over untouched,
// so a header from them is never read as one: the HTTP parser answers it with 400 and TLS fails the
// handshake.

import net, { type Server, type Socket } from 'node:net';
import { setClientAddress } from '../util/client-address.ts';
import { parseProxyHeader } from './proxy-protocol.ts';

export interface ProxyAcceptOptions {
  /** Peers (the load balancers) that must and may send a PROXY header. */
  readonly trusted: (address: string) => boolean;
  /** A trusted peer's header must be complete within this. */
  readonly timeoutMs: number;
  /**
   * A trusted connection was closed for a bad or missing header. Called at most once a second per
   * listener, with the number of others refused since the last call, so a balancer set up without
   * the protocol cannot flood the log.
   */
  readonly onRejected?: (peer: string, reason: string, alsoRefused: number) => void;
}

/** A TCP server that feeds `target` (an http, https or http2 server) through the PROXY header. */
export function proxyProtocolServer(target: Server, opts: ProxyAcceptOptions): Server {
  let last = Number.NEGATIVE_INFINITY;
  let quiet = 0;
  const onRejected = (peer: string, reason: string) => {
    const now = performance.now();
    if (now - last < 1000) {
      quiet++;
      return;
    }
    last = now;
    opts.onRejected?.(peer, reason, quiet);
    quiet = 0;
  };
  const limited = { ...opts, onRejected };
  return net.createServer({ noDelay: true }, (socket) => acceptProxied(socket, target, limited));
}

function peerOf(socket: Socket): string {
  const a = socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export function acceptProxied(
  socket: Socket,
  target: Server,
  opts: Pick<ProxyAcceptOptions, 'trusted' | 'timeoutMs'> & {
    onRejected?: (peer: string, reason: string) => void;
  },
): void {
  const peer = peerOf(socket);
  if (!opts.trusted(peer)) {
    target.emit('connection', socket);
    return;
  }
  let buf: Buffer = Buffer.alloc(0);
  const reject = (reason: string) => {
    cleanup();
    opts.onRejected?.(peer, reason);
    socket.destroy();
  };
  const timer = setTimeout(
    () => reject(`no complete PROXY header within ${opts.timeoutMs} ms`),
    opts.timeoutMs,
  );
  const onReadable = () => {
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = parseProxyHeader(buf);
      if (r.state === 'incomplete') continue;
      if (r.state === 'invalid') return reject(r.reason);
      cleanup();
      if (r.header.command === 'proxy') setClientAddress(socket, r.header.source.address);
      // The client's first bytes may have come in the same packet: the server reads them first.
      if (buf.length > r.length) socket.unshift(buf.subarray(r.length));
      target.emit('connection', socket);
      return;
    }
  };
  const onEnd = () => reject('connection closed before the PROXY header');
  const cleanup = () => {
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('end', onEnd);
    socket.off('error', cleanup);
  };
  socket.on('readable', onReadable);
  socket.on('end', onEnd);
  // An error before the header (a reset): nothing to hand over; node destroys the socket.
  socket.on('error', cleanup);
}
