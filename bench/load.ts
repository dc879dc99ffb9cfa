// The open-loop generator as its own process, so the failover harness can pin it to the load CPU
// (like wrk) and keep it apart from the harness's own work (reading the upstreams' logs).
//   node --import tsx bench/load.ts --url URL [--host H] --rate N --duration S --grace S
//        [--post-share F] [--run-id ID] [--untagged] [--warmup S] [--kill-at S --kill-pid PID --signal SIG] --out FILE
// Writes the OpenLoopResult as JSON to FILE.

import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runOpenLoop } from './lib/open-loop.ts';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' },
    host: { type: 'string' },
    rate: { type: 'string' },
    duration: { type: 'string' },
    grace: { type: 'string' },
    'post-share': { type: 'string' },
    'run-id': { type: 'string' },
    untagged: { type: 'boolean', default: false },
    warmup: { type: 'string' },
    'kill-at': { type: 'string' },
    'kill-pid': { type: 'string' },
    signal: { type: 'string' },
    out: { type: 'string' },
  },
});
if (!a.url || !a.rate || !a.duration || !a.out) {
  process.stderr.write('usage: load.ts --url URL --rate N --duration S --grace S --out FILE [...]\n');
  process.exit(2);
}
const events =
  a['kill-at'] && a['kill-pid']
    ? [
        {
          atMs: Number(a['kill-at']) * 1000,
          run: () => {
            try {
              process.kill(Number(a['kill-pid']), (a.signal ?? 'SIGKILL') as NodeJS.Signals);
            } catch (e) {
              process.stderr.write(`signal failed: ${(e as Error).message}\n`);
            }
          },
        },
      ]
    : [];
// Warm-up in this same process, so the measured schedule does not pay for JIT and lazy module
// loading of a cold generator (seen as a ~1 s stall early in the run otherwise).
if (Number(a.warmup ?? 0) > 0) {
  await runOpenLoop({
    url: a.url,
    host: a.host,
    rate: Number(a.rate),
    durationS: Number(a.warmup),
    graceS: 5,
    untagged: true,
  });
}
const r = await runOpenLoop({
  url: a.url,
  host: a.host,
  rate: Number(a.rate),
  durationS: Number(a.duration),
  graceS: Number(a.grace ?? 5),
  postShare: Number(a['post-share'] ?? 0),
  runId: a['run-id'],
  untagged: a.untagged,
  events,
});
writeFileSync(a.out, JSON.stringify(r));
process.exit(0);
