// The image recipe: multi-stage, Node.js 24, production dependencies only, non-root, and an
// allow-list .dockerignore. (No Docker daemon on CI: this reads the files.)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './load.ts';

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const stages = dockerfile.split(/^FROM /m).slice(1);
const runtime = stages[stages.length - 1];

describe('Dockerfile', () => {
  it('installs production dependencies only, from the lock file', () => {
    assert.match(dockerfile, /npm ci --omit=dev/);
    assert.doesNotMatch(dockerfile, /npm (install|i) /);
  });

  it('runtime stage runs as a non-root user and copies only what runs', () => {
    assert.ok(stages.length >= 2);
    const user = /^USER (\S+)/m.exec(runtime)?.[1];
    assert.ok(user && !/^(0|root)(:|$)/.test(user), `USER ${user}`);
    const copies = [...runtime.matchAll(/^COPY (?:--from=\S+ )?(\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(copies.sort(), ['/app/node_modules', 'bin', 'package.json', 'src'].sort());
    assert.doesNotMatch(runtime, /^RUN /m, 'nothing to run in the final stage');
    assert.match(runtime, /^ENTRYPOINT \["node", "bin\/wharf\.js"\]/m);
  });

  it('.dockerignore is an allow-list without tests, git or node_modules', () => {
    const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    assert.equal(lines[0], '*');
    const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
    assert.deepEqual(allowed.sort(), ['bin/', 'package-lock.json', 'package.json', 'src/']);
  });
});
