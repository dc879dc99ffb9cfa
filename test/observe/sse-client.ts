// A minimal SSE client for tests: parses `event:`/`data:` frames from a real HTTP response.
import http from 'node:http';

export interface SseMessage {
  readonly event: string;
  readonly data: unknown;
}

export interface SseConnection {
  readonly status: number;
  readonly messages: SseMessage[];
  readonly comments: string[];
  waitFor(pred: (m: SseMessage) => boolean, timeoutMs: number): Promise<SseMessage>;
  readonly closed: Promise<void>;
  close(): void;
}

export function connectSse(url: string, headers: Record<string, string> = {}): Promise<SseConnection> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      res.setEncoding('utf8');
      const messages: SseMessage[] = [];
      const comments: string[] = [];
      const waiters: { pred: (m: SseMessage) => boolean; resolve: (m: SseMessage) => void }[] = [];
      let buf = '';
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of frame.split('\n')) {
            if (line.startsWith(':')) comments.push(line);
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length === 0) continue;
          const m = { event, data: JSON.parse(data.join('\n')) as unknown };
          messages.push(m);
          for (const w of [...waiters]) {
            if (w.pred(m)) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(m);
            }
          }
        }
      });
      const closed = new Promise<void>((r) => res.on('close', () => r()));
      resolve({
        status: res.statusCode ?? 0,
        messages,
        comments,
        closed,
        waitFor(pred, timeoutMs) {
          const found = messages.find(pred);
          if (found) return Promise.resolve(found);
          return new Promise((ok, fail) => {
            const timer = setTimeout(
              () => fail(new Error(`no matching SSE message within ${timeoutMs} ms`)),
              timeoutMs,
            );
            waiters.push({
              pred,
              resolve: (m) => {
                clearTimeout(timer);
                ok(m);
              },
            });
          });
        },
        close() {
          req.destroy();
        },
      });
    });
    req.on('error', reject);
  });
}
