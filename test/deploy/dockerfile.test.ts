// The image recipe, read statically (no Docker daemon here or on CI): multi-stage, a digest-pinned
// Node.js 24 base, compiled JavaScript, production dependencies only, no npm in the runtime, non-root,
// an allow-list .dockerignore. And the image's /app assembled here the way the Dockerfile assembles it
// (`npm pack` of a fresh build, plus exactly the production dependencies), then run with plain node:
// it serves, and it holds no demo, sources, tests or bench.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './load.ts';

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const stages = dockerfile.split(/^FROM /m).slice(1);
const stage = (name: string) => stages.find((s) => new RegExp(`^\\S+ AS ${name}\\b`).test(s)) ?? '';
const runtime = stages[stages.length - 1];

describe('Dockerfile', () => {
  it('the base is Node.js 24, pinned by version and digest', () => {
    const arg = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
    assert.match(arg ?? '', /^node:24\.\d+\.\d+-trixie-slim@sha256:[0-9a-f]{64}$/);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${VAR} of docker
    for (const from of dockerfile.match(/^FROM \S+/gm) ?? []) assert.equal(from, 'FROM ${NODE_IMAGE}');
    // The doc says where the digest came from and how to check it.
    assert.match(dockerfile, /docker buildx imagetools inspect node:24/);
  });

  it('compiles in a build stage and packs exactly the files package.json lists', () => {
    const build = stage('build');
    assert.match(build, /npm ci --ignore-scripts/);
    assert.match(build, /node scripts\/build\.mjs/);
    assert.match(build, /npm pack --ignore-scripts/);
  });

  it('installs production dependencies only, from the lock file', () => {
    assert.match(stage('deps'), /npm ci --omit=dev --ignore-scripts/);
    assert.doesNotMatch(dockerfile, /npm (install|i) /);
  });

  it('runtime: plain node on dist/, no npm, non-root, only the packed app and its dependencies', () => {
    assert.ok(stages.length >= 3);
    const user = /^USER (\S+)/m.exec(runtime)?.[1];
    assert.ok(user && !/^(0|root)(:|$)/.test(user), `USER ${user}`);
    const copies = [...runtime.matchAll(/^COPY (--from=\S+ )?(\S+)/gm)].map((m) =>
      `${m[1] ?? ''}${m[2]}`.trim(),
    );
    assert.deepEqual(copies.sort(), ['--from=build /app/', '--from=deps /app/node_modules'].sort());
    const runs = [...runtime.matchAll(/^RUN (.+(?:\\\n.+)*)/gm)].map((m) => m[1]);
    assert.equal(runs.length, 1, 'one RUN: removing the package managers');
    for (const p of [
      '/usr/local/lib/node_modules',
      '/usr/local/bin/npm',
      '/usr/local/bin/npx',
      '/usr/local/bin/corepack',
    ])
      assert.ok(runs[0].includes(p), p);
    assert.match(runtime, /^ENTRYPOINT \["node", "bin\/wharf\.js"\]/m);
    assert.doesNotMatch(runtime, /tsx|--import/);
  });

  it('.dockerignore is an allow-list without tests, git or node_modules', () => {
    const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    assert.equal(lines[0], '*');
    const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
    assert.deepEqual(allowed.sort(), [
      'LICENSE',
      'bin/',
      'package-lock.json',
      'package.json',
      'scripts/build.mjs',
      'src/',
      'tsconfig.build.json',
      'tsconfig.json',
    ]);
    // Every file the build stage copies is allowed in.
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm))
      for (const f of m[1].split(' ')) assert.ok(allowed.includes(f) || allowed.includes(`${f}/`), f);
  });
});

describe('the image /app, assembled as the Dockerfile does', () => {
  it('runs with plain node, serves, and holds nothing but the app and its production dependencies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-image-'));
    try {
      // Stage 1: `npm pack` of the build (scripts/run-tests.mjs built dist/ before the tests).
      const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir, '--json'], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      assert.equal(pack.status, 0, pack.stderr);
      const app = join(dir, 'app');
      mkdirSync(app);
      const tgz = join(dir, JSON.parse(pack.stdout)[0].filename);
      assert.equal(spawnSync('tar', ['-xzf', tgz, '-C', app, '--strip-components=1']).status, 0);
      // Stage 2: the production dependencies, as `npm ci --omit=dev` installs them (taken from
      // this checkout's node_modules by the lock file's own list, so the test needs no network).
      const prod = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      const paths = prod.stdout
        .split('\n')
        .filter((p) => p.includes('/node_modules/'))
        .map((p) => relative(ROOT, p));
      assert.ok(
        !paths.some((p) => /node_modules\/(tsx|typescript|esbuild|@kubernetes\/client-node)(\/|$)/.test(p)),
      );
      for (const p of paths) cpSync(join(ROOT, p), join(app, p), { recursive: true });

      // npm pack adds README.md too; .dockerignore keeps it out of the Docker build (LICENSE stays).
      const top = readdirSync(app)
        .filter((f) => f !== 'README.md')
        .sort();
      assert.deepEqual(top, ['LICENSE', 'bin', 'dist', 'node_modules', 'package.json']);
      assert.deepEqual(readdirSync(join(app, 'bin')), ['wharf.js']);
      assert.ok(!existsSync(join(app, 'dist', 'demo')) && !existsSync(join(app, 'dist', 'fake-apiserver')));

      // Run it as the image does: node bin/wharf.js, NODE_ENV=production, nothing writable needed.
      const config = join(dir, 'config.yaml');
      writeFileSync(
        config,
        'listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nprojects: { a: { instances: { a-0: { http: 127.0.0.1:1 } } } }\n',
      );
      const child = spawn(process.execPath, ['bin/wharf.js', 'serve', '--config', config], {
        cwd: app,
        env: { PATH: process.env.PATH, NODE_ENV: 'production' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (c) => (out += c));
      child.stderr.on('data', (c) => (out += c));
      try {
        const started = await new Promise<{ admin: string }>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`not started in 20 s:\n${out}`)), 20_000);
          const check = () => {
            const line = out.split('\n').find((l) => l.includes('"msg":"wharf started"'));
            if (line) {
              clearTimeout(t);
              resolve(JSON.parse(line));
            }
          };
          child.stdout.on('data', check);
          child.once('exit', (code) => reject(new Error(`exited ${code}:\n${out}`)));
        });
        const ready = await fetch(`http://${started.admin}/readyz`);
        assert.equal(ready.status, 200);
        const metrics = await (await fetch(`http://${started.admin}/metrics`)).text();
        assert.match(metrics, /wharf_route_projects 1/);
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      // The demo is a development tool: not in the image, and it says so.
      const demo = spawnSync(process.execPath, ['bin/wharf.js', 'demo'], { cwd: app, encoding: 'utf8' });
      assert.equal(demo.status, 2);
      assert.match(demo.stderr, /the demo is not part of this installation/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
