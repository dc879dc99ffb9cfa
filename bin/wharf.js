#!/usr/bin/env node
// Runs the compiled JavaScript in dist/ with plain node: no compiler is loaded at run time and
// nothing is written to disk. `npm ci` builds dist/ (the `prepare` script); `npm run build` does it
// again after a change. Development without a build: `npm run dev -- serve ...` (tsx).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('wharf: dist/ is missing; run `npm run build` (npm ci runs it too)\n');
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv.slice(2));
