// The one-way flow of DESIGN.md §5 (docs/architecture.md), checked on the import graph of src/:
// every import specifier of every file is read, and an import against the direction fails here,
// so in `npm test` and in CI. No dependency: a regex over the sources is enough for the import
// forms this code base uses (static `import ... from`, `export ... from`, `import '...'` and
// dynamic `import('...')`), with comments stripped first.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, test } from 'node:test';

const SRC = join(import.meta.dirname, '../../src');

/**
 * What each part of src/ may import, besides itself (a folder, or `main` for main.ts, `observed`
 * for observed.ts, `cli` for cli.ts). Read top-down: the lower a part, the less it may see.
 */
const RULES: Readonly<Record<string, readonly string[]>> = {
  // Shared types only: imports nothing, not even a package.
  model: [],
  // Small helpers with no knowledge of Wharf.
  util: [],
  // Pure: records + conventions -> RouteTable.
  routing: ['model', 'util'],
  // Pick an instance; no I/O.
  balancing: ['model', 'util'],
  // The only writer of health flags; never the proxy or admin.
  health: ['model', 'util'],
  // The Kubernetes source: publishes records through the Source contract; never routing or proxy.
  discovery: ['model', 'util'],
  // The config file; its settings are parsed by routing's one parser.
  config: ['model', 'util', 'routing'],
  // Front ends and the request path; never admin, discovery, control, health or config.
  proxy: ['model', 'util', 'routing', 'balancing'],
  // Events to logs, metrics and SSE.
  observe: ['model', 'util'],
  // The admin listener and dashboard, on top of observe.
  admin: ['model', 'util', 'observe'],
  // Sources -> aggregate -> build -> swap; certificates from files and Secrets.
  control: ['model', 'util', 'routing', 'config', 'discovery', 'proxy'],
  // Wiring. The only part that imports control/.
  main: [
    'model',
    'util',
    'routing',
    'balancing',
    'health',
    'discovery',
    'config',
    'proxy',
    'observe',
    'admin',
    'control',
  ],
  // Wharf with observability attached (serve, demo).
  observed: ['model', 'util', 'observe', 'admin', 'main'],
  // Development tools and entry points, never imported by the proxy itself.
  'fake-apiserver': ['model', 'util', 'discovery'],
  webhook: ['model', 'util'],
  // The demo's command-line options, apart from the demo so that the image (which has no demo/) can print its help.
  'demo-options': ['model', 'util'],
  demo: ['model', 'util', 'config', 'observe', 'fake-apiserver', 'main', 'observed', 'demo-options'],
  cli: ['model', 'util', 'config', 'observe', 'main', 'observed', 'webhook', 'demo', 'demo-options'],
};

/** The part a path under src/ belongs to (`admin/dashboard/state.ts` -> `admin`). */
function partOf(path: string): string {
  const [first, ...rest] = path.split('/');
  return rest.length === 0 ? first.replace(/\.(ts|js|mjs)$/, '') : first;
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm;

function specifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  return [...code.matchAll(SPECIFIER)].map((m) => m[1]);
}

/** Every import against RULES in `files` (path under src/ -> source text), as readable lines. */
function violations(files: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [path, text] of files) {
    const from = partOf(path);
    const allowed = RULES[from];
    if (!allowed) {
      out.push(`${path}: src/${from} has no row in RULES (test/architecture/layering.test.ts): add one`);
      continue;
    }
    for (const spec of specifiers(text)) {
      if (!spec.startsWith('.')) {
        if (from === 'model') out.push(`${path} imports "${spec}": model/ imports nothing`);
        continue;
      }
      const target = normalize(join(dirname(path), spec))
        .split('\\')
        .join('/');
      if (target.startsWith('..')) {
        out.push(`${path} imports "${spec}", outside src/`);
        continue;
      }
      const to = partOf(target);
      if (to !== from && !allowed.includes(to))
        out.push(
          `${path} imports ${target}: ${from} may import only ${allowed.length ? allowed.join(', ') : 'nothing'}`,
        );
    }
  }
  return out;
}

function sources(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|js|mjs)$/.test(name))
        files.set(relative(dir, p).split('\\').join('/'), readFileSync(p, 'utf8'));
    }
  };
  walk(dir);
  return files;
}

describe('layering', () => {
  test("src/ imports only in DESIGN's direction", () => {
    const files = sources(SRC);
    assert.ok(files.size > 50, `read ${files.size} files`);
    assert.deepEqual(violations(files), []);
  });

  test('the check sees bad imports of every form, and only those', () => {
    const files = new Map([
      ['model/routes.ts', "import type { Conventions } from '../routing/build.ts';\nimport 'undici';\n"],
      [
        'routing/build.ts',
        "import { x } from '../model/routes.ts';\nexport { y } from '../proxy/forward.ts';\n",
      ],
      [
        'discovery/source.ts',
        "// import { z } from '../routing/build.ts';\nconst m = await import('../proxy/x.ts');\n",
      ],
      [
        'proxy/forward.ts',
        "import {\n  a,\n  b,\n} from '../control/plane.ts';\nimport { c } from './headers.ts';\n",
      ],
      ['admin/dashboard/state.ts', "import { projectsView } from '../server.ts';\n"],
      ['ingress/source.ts', "import type { Source } from '../model/source.ts';\n"],
      ['main.ts', "import { ControlPlane } from './control/plane.ts';\n"],
    ]);
    assert.deepEqual(violations(files), [
      'model/routes.ts imports routing/build.ts: model may import only nothing',
      'model/routes.ts imports "undici": model/ imports nothing',
      'routing/build.ts imports proxy/forward.ts: routing may import only model, util',
      'discovery/source.ts imports proxy/x.ts: discovery may import only model, util',
      'proxy/forward.ts imports control/plane.ts: proxy may import only model, util, routing, balancing',
      'ingress/source.ts: src/ingress has no row in RULES (test/architecture/layering.test.ts): add one',
    ]);
  });
});
