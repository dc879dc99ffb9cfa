// One demo instance: a real child process (so SIGSTOP really freezes it) serving each of its named
// ports on 127.0.0.1 and answering with its own name and port name. Plain JavaScript importing only
// node and handler.mjs: so it starts in ~50 ms without a TypeScript loader; restarts stay fast.
//
// Config comes as JSON in WHARF_DEMO_INSTANCE: { project, instance, ports: { name: port|0 }, healthPath }.
// When every port listens it sends { type: 'ready', ports: { name: port } } over IPC.
//
// Requests are answered by handler.mjs (shared with the in-process instances of generated projects).

import http from 'node:http';
import { createHandler } from './handler.mjs';

const cfg = JSON.parse(process.env.WHARF_DEMO_INSTANCE ?? '{}');
const counters = { served: 0, started: Date.now() };

const servers = [];
const bound = {};
await Promise.all(
  Object.entries(cfg.ports ?? {}).map(
    ([name, port]) =>
      new Promise((resolve, reject) => {
        const s = http.createServer({ keepAliveTimeout: 65_000 }, createHandler(cfg, name, counters));
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => {
          bound[name] = s.address().port;
          servers.push(s);
          resolve();
        });
      }),
  ),
).catch((err) => {
  process.stderr.write(`demo instance ${cfg.instance}: ${err.message}\n`);
  process.exit(3);
});

process.send?.({ type: 'ready', ports: bound });

// The parent going away (Ctrl-C, crash) takes the instance with it: no orphans.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => {
  for (const s of servers) s.close();
  process.exit(0);
});
