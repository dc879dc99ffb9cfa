// INTERIM demo: three local upstream servers behind Wharf from a static config. The monitoring work
// replaces this with the fake apiserver, real processes and the dashboard.

import http from 'node:http';
import { parseConfig } from '../config/load.ts';
import { Wharf } from '../main.ts';
import { stderrLog } from '../util/log.ts';

export async function runDemo(_args: string[]): Promise<void> {
  const servers: http.Server[] = [];
  const instances: Record<string, { http: string }> = {};
  for (const name of ['shop-0', 'shop-1', 'shop-2']) {
    const s = http.createServer((req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`hello from ${name} (${req.method} ${req.url})\n`);
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    servers.push(s);
    const a = s.address() as { port: number };
    instances[name] = { http: `127.0.0.1:${a.port}` };
  }
  const yaml = JSON.stringify({
    domain: 'demo.local',
    projects: { shop: { affinity: 'cookie', instances } },
  });
  const config = parseConfig(yaml, 'demo');
  const wharf = await Wharf.start({ config, log: stderrLog });
  const p = wharf.frontAddress.port;
  process.stdout.write(
    `\nWharf demo is running.\n  proxy  http://127.0.0.1:${p}\n  admin  http://127.0.0.1:${wharf.adminAddress.port}/api/projects\n\n` +
      `Try:\n  curl -H 'Host: shop.demo.local' http://127.0.0.1:${p}/\n` +
      `  curl -H 'Host: shop-1.http.shop.demo.local' http://127.0.0.1:${p}/\n\nCtrl-C stops it.\n`,
  );
  const stop = async () => {
    await wharf.stop(1000);
    for (const s of servers) s.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
