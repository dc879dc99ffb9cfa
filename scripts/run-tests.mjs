// Runs every test file under test/ with node:test and tsx. Node 20's --test has no glob support,
// so the files are listed here. Extra arguments are file filters: `npm test -- routing`.
// dist/ is built first: the tests that run `bin/wharf.js` as a child process run the compiled
// JavaScript that production runs, and it must match the source under test.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return walk(p);
    return p.endsWith('.test.ts') ? [p] : [];
  });
}

const build = spawnSync(process.execPath, [join(import.meta.dirname, 'build.mjs'), '--allow-type-errors'], {
  stdio: 'inherit',
});
if (build.status !== 0) process.exit(build.status ?? 1);

const filters = process.argv.slice(2);
const files = walk('test')
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
const res = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=120000', ...files],
  { stdio: 'inherit' },
);
process.exit(res.status ?? 1);
