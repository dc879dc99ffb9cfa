// Production runs dist/ (tsc's JavaScript) with plain node: check that the build is complete and
// self-contained, that no compiler is loaded at run time, and that the package ships nothing else.
// scripts/run-tests.mjs builds dist/ before any test runs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'dist');

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

describe('dist/', () => {
  const files = walk(DIST);
  const js = files.filter((f) => f.endsWith('.js'));

  it('has JavaScript and a source map for every TypeScript source', () => {
    const sources = walk(join(ROOT, 'src')).filter((f) => f.endsWith('.ts'));
    assert.ok(sources.length > 50);
    for (const s of sources) {
      const out = join(DIST, relative(join(ROOT, 'src'), s)).replace(/\.ts$/, '.js');
      assert.ok(existsSync(out), `${relative(ROOT, out)} missing`);
      assert.ok(existsSync(`${out}.map`), `${relative(ROOT, out)}.map missing`);
    }
  });

  it('imports .js (or plain .mjs), never .ts (rewriteRelativeImportExtensions)', () => {
    const bad: string[] = [];
    for (const f of js) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/(?:from\s*|import\s*\()\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
        if (!m[1].endsWith('.js') && !m[1].endsWith('.mjs')) bad.push(`${relative(ROOT, f)}: ${m[1]}`);
        else if (!existsSync(join(dirname(f), m[1])))
          bad.push(`${relative(ROOT, f)}: ${m[1]} does not exist`);
      }
    }
    assert.deepEqual(bad, []);
  });

  it('holds every file a module finds next to itself (new URL(..., import.meta.url))', () => {
    let n = 0;
    for (const f of js) {
      for (const m of readFileSync(f, 'utf8').matchAll(
        /new URL\(['"](\.{1,2}\/[^'"]+)['"],\s*import\.meta\.url\)/g,
      )) {
        n++;
        assert.ok(existsSync(join(dirname(f), m[1])), `${relative(ROOT, f)} needs ${m[1]}`);
      }
    }
    assert.ok(n >= 2, 'the demo instance script and package.json at least');
    for (const asset of ['index.html', 'app.js', 'style.css'])
      assert.ok(existsSync(join(DIST, 'admin', 'dashboard', asset)), asset);
  });

  it('bin/wharf.js runs on plain node without loading tsx, esbuild or typescript', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-dist-'));
    try {
      // A resolve hook that fails the process if anything asks for a compiler.
      const hook = join(dir, 'no-compiler.mjs');
      writeFileSync(
        hook,
        `export async function resolve(specifier, context, next) {
  if (/(^|\\/)(tsx|esbuild|typescript)(\\/|$)/.test(specifier)) throw new Error('compiler loaded: ' + specifier);
  return next(specifier, context);
}\n`,
      );
      const register = join(dir, 'register.mjs');
      writeFileSync(
        register,
        `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${hook}`)});\n`,
      );
      const config = join(dir, 'c.yaml');
      writeFileSync(config, 'projects: { a: { instances: { a-0: { http: 127.0.0.1:1 } } } }\n');
      const res = spawnSync(
        process.execPath,
        ['--import', register, join(ROOT, 'bin', 'wharf.js'), 'check-config', config],
        { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } },
      );
      assert.equal(res.status, 0, res.stderr);
      assert.match(res.stdout, /ok \(tier internal/);
      // The hook bites: the development entry loads tsx and is refused.
      const dev = spawnSync(
        process.execPath,
        ['--import', register, join(ROOT, 'bin', 'wharf-dev.js'), '--version'],
        {
          encoding: 'utf8',
          env: { ...process.env, NODE_OPTIONS: '' },
        },
      );
      assert.notEqual(dev.status, 0);
      assert.match(dev.stderr, /compiler loaded: tsx/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the package ships bin/wharf.js and dist/ only: no demo, fake apiserver, source, tests or bench', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.equal(pkg.private, true);
    assert.equal(pkg.dependencies.tsx, undefined, 'tsx is a devDependency');
    assert.equal(pkg.scripts.prepare, 'node scripts/build.mjs', 'npm ci builds dist/');
    const res = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(res.status, 0, res.stderr);
    const packed: string[] = JSON.parse(res.stdout)[0].files.map((f: { path: string }) => f.path);
    assert.ok(packed.includes('dist/cli.js') && packed.includes('bin/wharf.js'));
    const stray = packed.filter(
      (p) =>
        !['package.json', 'bin/wharf.js', 'README.md', 'LICENSE'].includes(p) &&
        !(p.startsWith('dist/') && !/^dist\/(demo|fake-apiserver)\//.test(p)),
    );
    assert.deepEqual(stray, []);
  });
});
