// Compiles src/ to dist/ (JavaScript and source maps) for production: `npm run build`, and `npm ci`
// runs it through `prepare`. Relative `.ts` imports become `.js` (rewriteRelativeImportExtensions),
// so dist/ runs on plain node without tsx. Files that are not TypeScript (the dashboard's page,
// script and styles, the demo's instance script) are copied as they are. dist/ is removed first so a
// deleted source file never lingers in it.
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
const res = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
// tsc still writes every file when it finds type errors (exit status 2). A production build fails
// on them; the test runner asks to go on (`--allow-type-errors`): `npm run typecheck` reports them.
const typeErrorsOnly = res.status === 2 && process.argv.includes('--allow-type-errors');
if (typeErrorsOnly) process.stderr.write('build: type errors above; dist/ was written anyway\n');
else if (res.status !== 0) process.exit(res.status ?? 1);

function copyAssets(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) copyAssets(p);
    else if (!name.endsWith('.ts')) cpSync(p, join(dist, relative(src, p)));
  }
}
copyAssets(src);
