// The `wharf` command line. Parses arguments, loads the config, and hands over to main.ts (serve),
// or to the demo / webhook entry points. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Overrides, parseConfig } from './config/load.ts';
import { reopenOnSignal } from './observe/log.ts';
import { startObserved } from './observed.ts';
import { stderrLog } from './util/log.ts';

const HELP = `wharf - a reverse proxy for Kubernetes microservices, with discovery by convention

Usage:
  wharf serve --config FILE [--listen HOST:PORT] [--admin HOST:PORT] [--domain D]
  wharf serve [--config FILE] (--kubeconfig FILE [--context NAME] | --in-cluster |
              --apiserver URL[,URL...] [--token-file F] [--ca-file F]) [--listen ...]
  wharf check-config FILE
  wharf demo
  wharf webhook --cert-file F --key-file F [--listen HOST:PORT] [--host-path DIR] [--mount-path DIR]
  wharf --help | --version

Commands:
  serve          Run the proxy. Routes <project>.D, <port>.<project>.D and
                 <instance>.<port>.<project>.D to the instances of each project.
  check-config   Validate a config file; prints every problem with its field path.
  demo           Run Wharf on a built-in demo (what \`npm start\` does).
  webhook        Mutating admission webhook that mounts the node log directory
                 into every pod of namespaces labelled wharf.io/logs=enabled.

Options for serve:
  -c, --config FILE        YAML config file (reloaded on change and on SIGHUP)
      --listen HOST:PORT   proxy listener (overrides \`listen\`, default 127.0.0.1:8080)
      --admin HOST:PORT    admin listener (overrides \`admin\`, default 127.0.0.1:9901)
      --domain D           convention domain (overrides \`domain\`)

Kubernetes discovery (Services labelled wharf.io/project; overrides the \`kubernetes:\` section;
without --config, these alone are enough):
      --kubeconfig FILE    use this kubeconfig (its current context)
      --context NAME       kubeconfig context; NAME,NAME... fails over between contexts
      --in-cluster         use the pod's service account (token re-read as it rotates)
      --apiserver URL,...  apiserver URLs to fail over between (e.g. the HA masters)
      --token-file F       bearer token file for --apiserver (re-read every 60 s)
      --ca-file F          CA bundle for --apiserver

Signals: SIGHUP reloads the config; SIGTERM/SIGINT drain and stop (exit 0).
Exit status: 0 ok, 1 runtime error, 2 bad usage or invalid config.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

class UsageError extends Error {}

function usage(msg: string): never {
  throw new UsageError(msg);
}

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      listen: { type: 'string' },
      admin: { type: 'string' },
      domain: { type: 'string' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      'in-cluster': { type: 'boolean' },
      apiserver: { type: 'string' },
      'token-file': { type: 'string' },
      'ca-file': { type: 'string' },
    },
    strict: true,
  });
  const overrides: Overrides = {
    listen: values.listen,
    admin: values.admin,
    domain: values.domain,
    kubeconfig: values.kubeconfig,
    context: values.context,
    inCluster: values['in-cluster'],
    apiservers: values.apiserver,
    tokenFile: values['token-file'],
    caFile: values['ca-file'],
  };
  const kubeFlags = [values.kubeconfig, values.context, values['in-cluster'], values.apiserver].some(
    (v) => v !== undefined,
  );
  if (!values.config && !kubeFlags)
    usage('serve needs --config FILE, or Kubernetes flags (--kubeconfig, --in-cluster or --apiserver)');
  const config = values.config
    ? loadConfig(values.config, overrides)
    : parseConfig('{}', '(command line)', overrides);
  const { wharf: running, obs } = await startObserved({ config, configPath: values.config, overrides });
  reopenOnSignal(obs.logs);
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

function checkConfig(args: string[]): void {
  const { positionals } = parseArgs({ args, allowPositionals: true, strict: true, options: {} });
  if (positionals.length !== 1) usage('check-config needs exactly one FILE');
  const config = loadConfig(positionals[0]);
  process.stdout.write(
    `${positionals[0]}: ok (tier ${config.tier}, domain ${config.domain}, ${config.projects.length} static project(s))\n`,
  );
}

export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'serve':
        return await serve(rest);
      case 'check-config':
        return checkConfig(rest);
      case 'webhook': {
        const { runWebhook } = await import('./webhook/index.ts');
        await runWebhook(rest, stderrLog);
        return;
      }
      case 'demo': {
        const { runDemo } = await import('./demo/index.ts');
        return await runDemo(rest);
      }
      case '--version':
      case '-v':
      case 'version':
        process.stdout.write(`wharf ${version()}\n`);
        return;
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(HELP);
        return;
      default:
        usage(`unknown command "${cmd}"`);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`wharf: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`wharf: ${(err as Error).message}\nRun \`wharf --help\` for usage.\n`);
      process.exit(2);
    }
    process.stderr.write(`wharf: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  }
}
