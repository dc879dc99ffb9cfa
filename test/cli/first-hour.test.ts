// The first hour with the CLI: a port that cannot be bound is one line saying which listener, which
// address and what to do (exit 1, no stack trace); check-config refuses what would fail at start;
// every subcommand has --help; typos get a suggestion; serve says when it is ready on a terminal.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { commandHelp, parseCommand, SERVE_OPTIONS, UsageError, unknownCommand } from '../../src/cli.ts';
import { DEMO_OPTIONS } from '../../src/demo-options.ts';
import { runWharf, WHARF_BIN } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'wharf-first-hour-'));
const config = join(dir, 'wharf.yaml');
writeFileSync(
  config,
  'domain: test.local\nprojects:\n  a:\n    instances:\n      a-0: { http: 127.0.0.1:1 }\n',
);

/** No line of a Node stack trace, and the message on one line. */
function oneLine(stderr: string): string {
  assert.doesNotMatch(stderr, /^\s+at /m, `a stack trace:\n${stderr}`);
  const lines = stderr.split('\n').filter((l) => l.startsWith('wharf'));
  assert.equal(lines.length, 1, stderr);
  return lines[0];
}

/**
 * Every CLI run of this file starts at module load, all at once (each is a process start of about
 * a second), and each test awaits its own result.
 */
interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}
const results = new Map<string, Promise<Result>>();
function launch(name: string, args: string[]): void {
  const c = runWharf(args);
  results.set(
    name,
    c.exit().then((code) => ({ code, stdout: c.stdout, stderr: c.stderr })),
  );
}
const result = (name: string) => results.get(name)!;

const busy = http.createServer();
await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
const busyPort = (busy.address() as AddressInfo).port;
after(() => busy.close());

const serveOn = (listen: string, admin: string) => [
  'serve',
  '--config',
  config,
  '--listen',
  listen,
  '--admin',
  admin,
];
launch('proxy in use', serveOn(`127.0.0.1:${busyPort}`, '127.0.0.1:0'));
launch('admin in use', serveOn('127.0.0.1:0', `127.0.0.1:${busyPort}`));
// 192.0.2.0/24 is TEST-NET-1: never assigned to a host.
launch('not available', serveOn('192.0.2.1:18080', '127.0.0.1:0'));
launch('demo in use', [
  'demo',
  '--listen',
  `127.0.0.1:${busyPort}`,
  '--admin',
  '127.0.0.1:0',
  '--no-traffic',
]);

// What only a start would have found before: check-config and serve refuse it.
const bad = join(dir, 'bad.yaml');
writeFileSync(
  bad,
  'listen: 127.0.0.1:8443\nadmin: 127.0.0.1:8443\ntier: edge\ntls: { redirect-http: 300.1.1.1:8080, certificates: [{ cert: /c, key: /k }] }\n',
);
launch('check bad', ['check-config', bad]);
launch('serve bad', ['serve', '--config', bad]);
// A config that parses, with a certificate file that is not there.
const noCert = join(dir, 'cert.yaml');
writeFileSync(
  noCert,
  `tier: edge\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\ntls: { certificates: [{ cert: ${dir}/none.crt, key: ${dir}/none.key }] }\n`,
);
launch('check cert', ['check-config', noCert]);
launch('serve cert', ['serve', '--config', noCert]);
launch('check ok', ['check-config', config]);

launch('help demo', ['demo', '-h']);
launch('help serve', ['help', 'serve']);
launch('typo command', ['servee']);
launch('typo option', ['serve', '--lsten', '127.0.0.1:0']);

describe('listener errors', () => {
  it('a proxy port in use: one line naming the listener, the address and what to do; exit 1', async () => {
    const r = await result('proxy in use');
    assert.equal(r.code, 1);
    assert.match(
      oneLine(r.stderr),
      new RegExp(
        `^wharf: the proxy listener cannot listen on 127\\.0\\.0\\.1:${busyPort}: the address is already in use .*choose another address with --listen HOST:PORT`,
      ),
    );
  });

  it('an admin port in use names the admin listener and --admin', async () => {
    const r = await result('admin in use');
    assert.equal(r.code, 1);
    assert.match(
      oneLine(r.stderr),
      /the admin listener cannot listen on .* already in use.*--admin HOST:PORT/,
    );
  });

  it('an address this host does not have (EADDRNOTAVAIL)', async () => {
    const r = await result('not available');
    assert.equal(r.code, 1);
    assert.match(
      oneLine(r.stderr),
      /the proxy listener cannot listen on 192\.0\.2\.1:18080: no network interface of this host has the address 192\.0\.2\.1\. Use one it has/,
    );
  });

  it('the demo says the same for its ports', async () => {
    const r = await result('demo in use');
    assert.equal(r.code, 1);
    assert.match(
      oneLine(r.stderr),
      /the proxy listener cannot listen on 127\.0\.0\.1:\d+: the address is already in use.*--listen HOST:PORT/,
    );
  });

  it('a port below 1024 without the privilege (EACCES)', async (t) => {
    // Root may bind low ports: run as nobody then, as a user would be.
    const asNobody = process.getuid?.() === 0;
    if (
      !asNobody &&
      Number(spawnSync('sysctl', ['-n', 'net.ipv4.ip_unprivileged_port_start']).stdout) <= 80
    ) {
      t.skip('this user may bind port 80 here');
      return;
    }
    chmodSync(dir, 0o755);
    const proc = spawn(
      process.execPath,
      [WHARF_BIN, 'serve', '--config', config, '--listen', '127.0.0.1:80', '--admin', '127.0.0.1:0'],
      {
        stdio: 'pipe',
        ...(asNobody ? { uid: 65534, gid: 65534, env: { ...process.env, HOME: tmpdir() } } : {}),
      },
    );
    let stderr = '';
    proc.stderr.on('data', (c) => {
      stderr += c;
    });
    proc.stdout.resume();
    const code = await new Promise((r) => proc.on('exit', r));
    assert.equal(code, 1, stderr);
    assert.match(
      oneLine(stderr),
      /the proxy listener cannot listen on 127\.0\.0\.1:80: permission denied; ports below 1024 need root or the CAP_NET_BIND_SERVICE capability\. Use a port of 1024 or more \(e\.g\. 127\.0\.0\.1:8080\)/,
    );
  });
});

describe('check-config refuses what would fail at start (exit 2)', () => {
  it('two listeners on one address, an invalid IP, a certificate file that does not exist', async () => {
    // serve refuses the same files the same way, before it binds anything.
    for (const name of ['check bad', 'serve bad']) {
      const r = await result(name);
      assert.equal(r.code, 2, name);
      assert.match(r.stderr, /admin: "127\.0\.0\.1:8443": the same address as listen/, name);
      assert.match(
        r.stderr,
        /tls\.redirect-http: "300\.1\.1\.1:8080": 300\.1\.1\.1 is not an IPv4 address/,
        name,
      );
    }
    for (const name of ['check cert', 'serve cert']) {
      const r = await result(name);
      assert.equal(r.code, 2, name);
      assert.match(
        r.stderr,
        /tls\.certificates\.0\.cert: ".*none\.crt": no such file: expected a PEM certificate file/,
        name,
      );
      assert.doesNotMatch(r.stderr, /^\s+at /m, name);
    }
  });

  it('ok names what it checked', async () => {
    const r = await result('check ok');
    assert.equal(r.code, 0);
    assert.match(
      r.stdout,
      /: ok \(tier internal, domain test\.local, 1 static project\(s\), proxy 127\.0\.0\.1:8080, admin 127\.0\.0\.1:9901\)/,
    );
  });
});

describe('help and suggestions', () => {
  it('every subcommand has --help with its options and an example', () => {
    for (const cmd of ['serve', 'check-config', 'demo', 'webhook']) {
      const h = commandHelp(cmd);
      assert.match(h, new RegExp(`^wharf ${cmd} - `));
      assert.match(h, /\nOptions:\n/);
      assert.match(h, new RegExp(`\\nExamples?:\\n  wharf ${cmd}`));
      assert.match(h, /-h, --help/);
    }
    assert.match(commandHelp('serve'), /--listen HOST:PORT +proxy listener/);
    assert.match(commandHelp('demo'), /--projects N +add N generated projects/);
  });

  it('wharf demo -h (it used to fail) and wharf help serve print it and exit 0', async () => {
    for (const [name, cmd] of [
      ['help demo', 'demo'],
      ['help serve', 'serve'],
    ]) {
      const r = await result(name);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, commandHelp(cmd));
    }
  });

  it('a typo in a command or an option gets the closest one', async () => {
    assert.equal(unknownCommand('servee'), 'unknown command "servee" (did you mean "serve"?)');
    assert.equal(
      unknownCommand('chek-config'),
      'unknown command "chek-config" (did you mean "check-config"?)',
    );
    assert.equal(unknownCommand('--verison'), 'unknown option "--verison" (did you mean "--version"?)');
    assert.equal(unknownCommand('frobnicate'), 'unknown command "frobnicate"');
    const usageOf = (cmd: string, args: string[], options: typeof SERVE_OPTIONS) => {
      try {
        parseCommand(cmd, args, options);
      } catch (err) {
        assert.ok(err instanceof UsageError, String(err));
        return err.message;
      }
      assert.fail('expected a usage error');
    };
    assert.equal(
      usageOf('serve', ['--lsten', 'x'], SERVE_OPTIONS),
      'unknown option --lsten (did you mean --listen?)',
    );
    assert.equal(
      usageOf('serve', ['--kube-config=x'], SERVE_OPTIONS),
      'unknown option --kube-config (did you mean --kubeconfig?)',
    );
    assert.equal(
      usageOf('demo', ['--project', '5'], DEMO_OPTIONS),
      'unknown option --project (did you mean --projects?)',
    );
    assert.equal(
      usageOf('serve', ['--listen'], SERVE_OPTIONS),
      '--listen needs a value, e.g. --listen HOST:PORT',
    );
    assert.equal(usageOf('serve', ['--in-cluster=yes'], SERVE_OPTIONS), '--in-cluster takes no value');
    assert.equal(usageOf('serve', ['extra'], SERVE_OPTIONS), 'unexpected argument "extra"');
    const { runDemo } = await import('../../src/demo/index.ts');
    await assert.rejects(
      runDemo({ rps: 'lots' }),
      /^Error: --rps "lots": expected a number from 0 to 500, e\.g\. --rps 20$/,
    );
    await assert.rejects(
      runDemo({ projects: '-1' }),
      /--projects "-1": expected a whole number from 0 to 1000/,
    );
  });

  it('as a process: exit 2, the message and where to read more', async () => {
    const cases: [string, RegExp][] = [
      [
        'typo command',
        /^wharf: unknown command "servee" \(did you mean "serve"\?\)\nRun `wharf --help` for usage\.\n$/,
      ],
      [
        'typo option',
        /^wharf serve: unknown option --lsten \(did you mean --listen\?\)\nRun `wharf serve --help` for usage\.\n$/,
      ],
    ];
    for (const [name, want] of cases) {
      const r = await result(name);
      assert.equal(r.code, 2, name);
      assert.match(r.stderr, want, name);
    }
  });
});

describe('serve on a terminal', () => {
  it('prints one human line on stderr when ready: addresses, admin URL, how many projects', async (t) => {
    if (spawnSync('script', ['--version']).status !== 0) {
      t.skip('script(1) from util-linux is not installed');
      return;
    }
    // script(1) gives the child a pseudo-terminal, as a user's shell would.
    const cmd = `${process.execPath} ${WHARF_BIN} serve --config ${config} --listen 127.0.0.1:0 --admin 127.0.0.1:0`;
    const proc = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: 'pipe' });
    // Not on a pipe: there the JSON log is all.
    const piped = runWharf(serveOn('127.0.0.1:0', '127.0.0.1:0'));
    let out = '';
    proc.stdout.on('data', (c) => {
      out += c;
    });
    const deadline = Date.now() + 20_000;
    while (!/wharf is ready/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    proc.kill('SIGTERM');
    await new Promise((r) => proc.on('exit', r));
    assert.match(
      out,
      /wharf is ready: proxy http:\/\/127\.0\.0\.1:\d+, admin and dashboard http:\/\/127\.0\.0\.1:\d+\/, 1 project \(tier internal, domain test\.local\)/,
    );
    await piped.started();
    piped.proc.kill('SIGTERM');
    await piped.exit();
    assert.doesNotMatch(piped.stderr + piped.stdout, /wharf is ready/);
  });
});
