// Raw TCP exchanges, for malformed and hostile requests that no HTTP client would send.

import net from 'node:net';

/**
 * Writes `payload` (or lets it drive the socket: trickled or stalled requests), collects everything
 * until the server closes or `waitMs` passes.
 */
export function rawExchange(
  port: number,
  payload: string | Buffer | ((sock: net.Socket) => void),
  waitMs = 2000,
): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    const timer = setTimeout(done, waitMs);
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', done);
    sock.on('close', done);
    sock.on('error', done);
    if (typeof payload === 'function') payload(sock);
    else sock.write(payload);
  });
}

/**
 * A driver for rawExchange: sends a POST's head with Content-Length `bytes`, then its body one byte
 * every `everyMs` (a slow but moving client).
 */
export function trickledPost(head: string, bytes: number, everyMs: number): (sock: net.Socket) => void {
  return (s) => {
    s.write(`POST ${head}Content-Length: ${bytes}\r\nConnection: close\r\n\r\n`);
    let sent = 0;
    const drip = setInterval(() => {
      s.write('x');
      if (++sent === bytes) clearInterval(drip);
    }, everyMs);
    s.on('close', () => clearInterval(drip));
  };
}

/** rawExchange, and how long it took until the server closed (or `waitMs` passed). */
export async function timedExchange(
  port: number,
  payload: string | Buffer | ((sock: net.Socket) => void),
  waitMs = 5000,
): Promise<{ raw: string; ms: number }> {
  const t0 = Date.now();
  const raw = await rawExchange(port, payload, waitMs);
  return { raw, ms: Date.now() - t0 };
}
