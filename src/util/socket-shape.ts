// One hidden class for the server-side sockets of every listener in this process.
//
// V8 optimises node's HTTP and stream internals (parserOnIncoming, onStreamRead, Readable.push,
// Writable.cork, ...) for the object shapes it has seen, and every listener shares them. The data
// plane reads `socket.remoteAddress` on each request, which caches `_peername` on the socket and
// gives its sockets a shape the admin port's sockets did not have. The first /metrics scrape under
// load then deoptimised about 70 of those shared functions (`--trace-deopt`: "wrong map"), and while
// Prometheus kept scraping the data plane ran about 4% slower (paired windows, bench/lib/paired.ts:
// CPU per request of a scraped twin against an unscraped one, 4.5% before, 0.5% after this).
// Reading the address as soon as a connection arrives, on every listener, makes the shapes match.

import type { Server } from 'node:net';

export function uniformSocketShape(server: Server): void {
  server.on('connection', (socket) => {
    // The getter caches the peer address on the socket (`_peername`): the property that differed.
    void socket.remoteAddress;
  });
}
