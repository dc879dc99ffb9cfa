// The `wharf` command line. Parses arguments, loads the config, and hands over to main.ts (serve),
// or to the demo / webhook entry points. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config.
// Every subcommand answers --help with its options and an example; a typo in a command or an
// option gets the closest known one suggested; a listener that cannot bind is one line saying what
// to do, never a stack trace.

import { readFileSync } from 'node:fs';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { checkConfigFiles } from './config/files.ts';
import { type Config, ConfigError, loadConfig, type Overrides, parseConfig } from './config/load.ts';
import { DEMO_OPTIONS, DemoUsageError } from './demo-options.ts';
import { configListeners, explainListenError, type ListenerSpec } from './util/listen-error.ts';
import { stderrLog } from './util/log.ts';
import type { OptionSpec } from './util/options.ts';
import { closest } from './util/suggest.ts';

interface CommandSpec {
  readonly summary: string;
  readonly usage: readonly string[];
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Lines shown after the options (groups, notes). */
  readonly notes?: string;
  readonly examples: readonly string[];
}

export const SERVE_OPTIONS: Record<string, OptionSpec> = {
  config: {
    type: 'string',
    short: 'c',
    arg: 'FILE',
    help: 'YAML config file (reloaded on change and on SIGHUP)',
  },
  listen: {
    type: 'string',
    arg: 'HOST:PORT',
    help: 'proxy listener (overrides `listen`, default 127.0.0.1:8080)',
  },
  admin: {
    type: 'string',
    arg: 'HOST:PORT',
    help: 'admin listener: API, /metrics, dashboard (overrides `admin`, default 127.0.0.1:9901)',
  },
  domain: { type: 'string', arg: 'D', help: 'convention domain (overrides `domain`, default wharf.local)' },
  kubeconfig: {
    type: 'string',
    arg: 'FILE',
    help: 'discover projects with this kubeconfig (its current context)',
  },
  context: {
    type: 'string',
    arg: 'NAME',
    help: 'kubeconfig context; NAME,NAME... fails over between contexts',
  },
  'in-cluster': { type: 'boolean', help: "use the pod's service account (token re-read as it rotates)" },
  apiserver: {
    type: 'string',
    arg: 'URL,...',
    help: 'apiserver URLs to fail over between (e.g. the HA masters)',
  },
  'token-file': { type: 'string', arg: 'F', help: 'bearer token file for --apiserver (re-read every 60 s)' },
  'ca-file': { type: 'string', arg: 'F', help: 'CA bundle for --apiserver' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

const WEBHOOK_OPTIONS: Record<string, OptionSpec> = {
  listen: { type: 'string', arg: 'HOST:PORT', help: 'TLS listener (default 0.0.0.0:8443)' },
  'cert-file': { type: 'string', arg: 'FILE', help: 'serving certificate (PEM); re-read when it changes' },
  'key-file': { type: 'string', arg: 'FILE', help: 'its private key (PEM)' },
  'host-path': { type: 'string', arg: 'DIR', help: 'node log directory (default /var/log/services)' },
  'mount-path': {
    type: 'string',
    arg: 'DIR',
    help: 'where containers see their folder (default /var/log/service)',
  },
  path: { type: 'string', arg: 'PATH', help: 'URL path of the review endpoint (default /mutate)' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

const COMMANDS: Record<string, CommandSpec> = {
  serve: {
    summary: 'Run the proxy: routes <project>.D, <port>.<project>.D and <instance>.<port>.<project>.D.',
    usage: [
      'wharf serve --config FILE [--listen HOST:PORT] [--admin HOST:PORT] [--domain D]',
      'wharf serve [--config FILE] (--kubeconfig FILE [--context NAME] | --in-cluster |',
      '            --apiserver URL[,URL...] [--token-file F] [--ca-file F])',
    ],
    options: SERVE_OPTIONS,
    notes:
      'Signals: SIGHUP reloads the config; SIGTERM/SIGINT drain and stop (exit 0).\n' +
      'Exit status: 0 ok, 1 runtime error (e.g. a port in use), 2 bad usage or invalid config.',
    examples: [
      'wharf serve --config wharf.yaml',
      'wharf serve --kubeconfig ~/.kube/config --listen 0.0.0.0:8080 --domain apps.example.com',
    ],
  },
  'check-config': {
    summary: 'Validate a config file without starting anything: every problem with its field path.',
    usage: ['wharf check-config FILE'],
    options: { help: { type: 'boolean', short: 'h', help: 'show this help' } },
    notes:
      'Checks values, listener addresses (two on one address), health ports, edge.forward-to and\n' +
      'the certificate files (they exist and match their keys). Exit status: 0 ok, 2 invalid.',
    examples: ['wharf check-config wharf.yaml'],
  },
  demo: {
    summary:
      'Run Wharf on a built-in demo (what `npm start` does): real instance processes to freeze, kill and scale.',
    usage: [
      'wharf demo [--listen HOST:PORT] [--admin HOST:PORT] [--rps N] [--projects N] [--source apiserver|static]',
    ],
    options: DEMO_OPTIONS,
    notes: 'Ctrl-C (or the end of the process that started it) stops everything it started.',
    examples: ['wharf demo', 'wharf demo --listen 127.0.0.1:18080 --admin 127.0.0.1:19901 --projects 200'],
  },
  webhook: {
    summary:
      'Mutating admission webhook that mounts the node log directory into pods (wharf.io/logs=enabled).',
    usage: [
      'wharf webhook --cert-file FILE --key-file FILE [--listen HOST:PORT]',
      '              [--host-path DIR] [--mount-path DIR] [--path /mutate]',
    ],
    options: WEBHOOK_OPTIONS,
    examples: ['wharf webhook --cert-file /tls/tls.crt --key-file /tls/tls.key'],
  },
};

const OTHER_WORDS = ['help', 'version', '--help', '--version'];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function optionLines(options: Readonly<Record<string, OptionSpec>>): string {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.arg ? ` ${o.arg}` : ''}`;
    return [flag, o.help] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  return rows.map(([f, h]) => `  ${f.padEnd(width)}${h}`).join('\n');
}

/** `wharf <command> --help`. */
export function commandHelp(name: string): string {
  const c = COMMANDS[name];
  return (
    `wharf ${name} - ${c.summary}\n\nUsage:\n${c.usage.map((u) => `  ${u}`).join('\n')}\n\n` +
    `Options:\n${optionLines(c.options)}\n` +
    (c.notes ? `\n${c.notes}\n` : '') +
    `\nExample${c.examples.length > 1 ? 's' : ''}:\n${c.examples.map((e) => `  ${e}`).join('\n')}\n`
  );
}

const HELP = `wharf - a reverse proxy for Kubernetes microservices, with discovery by convention

Usage:
  wharf <command> [options]        (after \`npm ci\` in a checkout: npx wharf <command>)

Commands:
${Object.entries(COMMANDS)
  .map(([n, c]) => `  ${n.padEnd(14)} ${c.summary}`)
  .join('\n')}

  wharf <command> --help   options and an example for one command
  wharf --version

Examples:
  wharf serve --config wharf.yaml
  wharf check-config wharf.yaml
  wharf demo

Exit status: 0 ok, 1 runtime error, 2 bad usage or invalid config.
`;

export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

function usage(msg: string, command?: string): never {
  throw new UsageError(msg, command);
}

/**
 * parseArgs with our own error wording: an unknown option names the closest known one, a missing
 * value shows an example. node's messages (`To specify a positional argument...`) never reach users.
 */
export function parseCommand(
  command: string,
  args: string[],
  options: Readonly<Record<string, OptionSpec>>,
  allowPositionals = false,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  const config: ParseArgsConfig = {
    args,
    strict: true,
    allowPositionals,
    options: Object.fromEntries(
      Object.entries(options).map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}) }]),
    ),
  };
  try {
    const { values, positionals } = parseArgs(config);
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    const code = (err as { code?: string }).code;
    const msg = (err as Error).message;
    const opt = /'(-{1,2}[^' ]+)/.exec(msg)?.[1] ?? '';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const name = opt.replace(/^-+/, '').split('=')[0];
      const hint = closest(name, Object.keys(options));
      usage(`unknown option ${opt}${hint ? ` (did you mean --${hint}?)` : ''}`, command);
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const name = opt.replace(/^-+/, '');
      const spec = options[name] ?? Object.values(options).find((o) => o.short === name);
      if (spec?.type === 'boolean') usage(`${opt} takes no value`, command);
      usage(`${opt} needs a value${spec?.arg ? `, e.g. ${opt} ${spec.arg}` : ''}`, command);
    }
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      const extra = /'([^']*)'/.exec(msg)?.[1] ?? '';
      usage(`unexpected argument "${extra}"`, command);
    }
    throw err;
  }
}

async function serve(args: string[]): Promise<void> {
  const { values } = parseCommand('serve', args, SERVE_OPTIONS);
  const str = (k: string) => values[k] as string | undefined;
  const overrides: Overrides = {
    listen: str('listen'),
    admin: str('admin'),
    domain: str('domain'),
    kubeconfig: str('kubeconfig'),
    context: str('context'),
    inCluster: values['in-cluster'] as boolean | undefined,
    apiservers: str('apiserver'),
    tokenFile: str('token-file'),
    caFile: str('ca-file'),
  };
  const kubeFlags = ['kubeconfig', 'context', 'in-cluster', 'apiserver'].some((k) => values[k] !== undefined);
  const file = str('config');
  if (!file && !kubeFlags)
    usage(
      'serve needs --config FILE, or Kubernetes flags (--kubeconfig, --in-cluster or --apiserver); e.g. wharf serve --config wharf.yaml',
      'serve',
    );
  const config = file ? loadConfig(file, overrides) : parseConfig('{}', '(command line)', overrides);
  const fileIssues = checkConfigFiles(config);
  if (fileIssues.length > 0) throw new ConfigError(file ?? '(command line)', fileIssues);
  listeners = configListeners(config);
  const { startObserved } = await import('./observed.ts');
  const { reopenOnSignal } = await import('./observe/log.ts');
  const { wharf: running, obs } = await startObserved({ config, configPath: file, overrides });
  reopenOnSignal(obs.logs);
  if (process.stderr.isTTY) announceReady(running, config);
  process.on('SIGHUP', () => running.reload());
  let signalled = false;
  const stop = (sig: string) => {
    if (signalled) return;
    signalled = true;
    obs.logs.app('info', `received ${sig}`);
    running
      .stop()
      .then(() => obs.close())
      .then(
        () => process.exit(0),
        (err: Error) => {
          stderrLog('error', 'stop failed', { reason: err.message });
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

interface ReadyView {
  readonly frontAddress: { host: string; port: number };
  readonly adminAddress: { host: string; port: number };
  table(): { projects: { size: number } };
  readiness(): { ready: boolean; reasons: readonly string[] };
}

/** `http://host:port` for a bound address, with a wildcard shown as the loopback a browser can open. */
function url(a: { host: string; port: number }): string {
  const host = a.host === '0.0.0.0' || a.host === '::' ? '127.0.0.1' : a.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${a.port}`;
}

/** The one human line for a terminal (the JSON log is for machines): once ready, or why not yet. */
export function readyLine(w: ReadyView, c: Pick<Config, 'tier' | 'domain'>): string {
  const r = w.readiness();
  const n = w.table().projects.size;
  const head = r.ready ? 'wharf is ready' : `wharf is listening, not ready yet (${r.reasons.join('; ')})`;
  return `${head}: proxy ${url(w.frontAddress)}, admin and dashboard ${url(w.adminAddress)}/, ${n} project${n === 1 ? '' : 's'} (tier ${c.tier}, domain ${c.domain})\n`;
}

function announceReady(w: ReadyView, c: Pick<Config, 'tier' | 'domain'>): void {
  process.stderr.write(readyLine(w, c));
  if (w.readiness().ready) return;
  // Kubernetes discovery: say so again once the first sync is in.
  const timer = setInterval(() => {
    if (!w.readiness().ready) return;
    clearInterval(timer);
    process.stderr.write(readyLine(w, c));
  }, 200);
  timer.unref();
}

function checkConfig(args: string[]): void {
  const { positionals } = parseCommand('check-config', args, COMMANDS['check-config'].options, true);
  if (positionals.length !== 1)
    usage('check-config needs exactly one FILE, e.g. wharf check-config wharf.yaml', 'check-config');
  const config = loadConfig(positionals[0]);
  const fileIssues = checkConfigFiles(config);
  if (fileIssues.length > 0) throw new ConfigError(positionals[0], fileIssues);
  process.stdout.write(
    `${positionals[0]}: ok (tier ${config.tier}, domain ${config.domain}, ${config.projects.length} static project(s), proxy ${config.listen.host}:${config.listen.port}, admin ${config.admin.host}:${config.admin.port})\n`,
  );
}

/** The listeners of the command being run, to name the one that fails to bind. */
let listeners: ListenerSpec[] = [];

const wantsHelp = (args: readonly string[]) => args.includes('--help') || args.includes('-h');

export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd !== undefined && cmd in COMMANDS && wantsHelp(rest)) {
      process.stdout.write(commandHelp(cmd));
      return;
    }
    switch (cmd) {
      case 'serve':
        return await serve(rest);
      case 'check-config':
        return checkConfig(rest);
      case 'webhook': {
        parseCommand('webhook', rest, WEBHOOK_OPTIONS);
        const { runWebhook } = await import('./webhook/index.ts');
        await runWebhook(rest, stderrLog);
        return;
      }
      case 'demo': {
        const { values } = parseCommand('demo', rest, DEMO_OPTIONS);
        listeners = [
          { name: 'proxy listener', setting: '--listen HOST:PORT', ...hostPortOr(values.listen, 8080) },
          { name: 'admin listener', setting: '--admin HOST:PORT', ...hostPortOr(values.admin, 9901) },
        ];
        // The demo is a development tool: the image leaves it out (Dockerfile).
        const demo = await import('./demo/index.ts').catch((err: { code?: string }) => {
          if (err.code === 'ERR_MODULE_NOT_FOUND') return undefined;
          throw err;
        });
        if (!demo) usage('the demo is not part of this installation; run `npm start` in a clone', 'demo');
        try {
          return await demo.runDemo(values);
        } catch (err) {
          if (err instanceof DemoUsageError) usage(err.message, 'demo');
          throw err;
        }
      }
      case '--version':
      case '-v':
      case 'version':
        process.stdout.write(`wharf ${version()}\n`);
        return;
      case undefined:
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        return;
      case 'help': {
        const topic = rest[0];
        process.stdout.write(topic && topic in COMMANDS ? commandHelp(topic) : HELP);
        return;
      }
      default:
        usage(unknownCommand(cmd));
    }
  } catch (err) {
    fail(err);
  }
}

/** `unknown command "servee" (did you mean "serve"?)`. */
export function unknownCommand(cmd: string): string {
  const hint = closest(cmd, [...Object.keys(COMMANDS), ...OTHER_WORDS]);
  return `unknown ${cmd.startsWith('-') ? 'option' : 'command'} "${cmd}"${hint ? ` (did you mean "${hint}"?)` : ''}`;
}

/** `HOST:PORT` of a flag for naming a listener in an error; the default when absent or unreadable. */
function hostPortOr(v: unknown, port: number): { host: string; port: number } {
  const m = typeof v === 'string' ? /^\[?([^\]]*?)\]?:(\d+)$/.exec(v) : null;
  return m ? { host: m[1] || '0.0.0.0', port: Number(m[2]) } : { host: '127.0.0.1', port };
}

/** Prints one clear line for anything that stops the CLI, and exits with the documented status. */
function fail(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`wharf: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    const cmd = err instanceof UsageError ? err.command : undefined;
    const more = cmd ? `wharf ${cmd} --help` : 'wharf --help';
    process.stderr.write(
      `wharf${cmd ? ` ${cmd}` : ''}: ${(err as Error).message}\nRun \`${more}\` for usage.\n`,
    );
    process.exit(2);
  }
  const listen = explainListenError(err, listeners);
  if (listen) {
    process.stderr.write(`wharf: ${listen}\n`);
    process.exit(1);
  }
  process.stderr.write(`wharf: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
}
