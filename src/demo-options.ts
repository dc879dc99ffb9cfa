// The options of `wharf demo`: the CLI parses them with this table and prints it for --help. Outside
// demo/, which the image leaves out: every command of the CLI loads this file.

import type { OptionSpec } from './util/options.ts';

export const DEMO_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  listen: { type: 'string', arg: 'HOST:PORT', help: 'proxy listener (default 127.0.0.1:8080)' },
  admin: { type: 'string', arg: 'HOST:PORT', help: 'admin listener and dashboard (default 127.0.0.1:9901)' },
  logs: { type: 'string', arg: 'DIR', help: 'log directory (default $TMPDIR/wharf-demo)' },
  rps: { type: 'string', arg: 'N', help: 'background requests per second, 0 to 500 (default 20)' },
  'no-traffic': { type: 'boolean', help: 'no background traffic (same as --rps 0)' },
  source: {
    type: 'string',
    arg: 'KIND',
    help: 'apiserver (default: a fake Kubernetes apiserver that Wharf watches) or static',
  },
  projects: {
    type: 'string',
    arg: 'N',
    help: 'add N generated projects (two in-process instances each) to see a large fleet (default 0)',
  },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** What `wharf demo` was given, after parsing with DEMO_OPTIONS. */
export type DemoArgs = Readonly<Record<string, string | boolean | undefined>>;

/** A bad `wharf demo` argument: the CLI reports it as bad usage (exit 2). */
export class DemoUsageError extends Error {}
