// `wharf webhook [options]`: argument parsing and process lifetime for the admission webhook.
// The flags are the ones deploy/webhook/deployment.yaml passes (a test parses those args).

import { parseArgs } from 'node:util';
import { type Log, stderrLog } from '../util/log.ts';
import { startWebhook, type WebhookHandle, type WebhookOptions } from './server.ts';

export const WEBHOOK_HELP = `Usage:
  wharf webhook --cert-file FILE --key-file FILE [--listen HOST:PORT]
                [--host-path DIR] [--mount-path DIR] [--path /mutate]

Mutating admission webhook (AdmissionReview v1 over TLS): mounts the node's log directory
HOST-PATH into every container of each pod it reviews, at MOUNT-PATH, with
subPathExpr $(WHARF_POD_NAMESPACE)/$(WHARF_POD_NAME). Pods annotated wharf.io/logs: disabled
are left alone; which namespaces are reviewed is set by the MutatingWebhookConfiguration.

Options:
      --listen HOST:PORT   TLS listener (default 0.0.0.0:8443)
      --cert-file FILE     serving certificate (PEM); re-read when it changes
      --key-file FILE      its private key (PEM)
      --host-path DIR      node log directory (default /var/log/services)
      --mount-path DIR     where containers see their folder (default /var/log/service)
      --path PATH          URL path of the review endpoint (default /mutate)
`;

function usageError(message: string): Error {
  // Same code family as node:util parseArgs errors, so the CLI reports it as bad usage (exit 2).
  return Object.assign(new Error(message), { code: 'ERR_PARSE_ARGS_WEBHOOK' });
}

/** Parses `wharf webhook` arguments; throws an ERR_PARSE_ARGS* error on bad usage. */
export function parseWebhookArgs(args: string[]): WebhookOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      listen: { type: 'string', default: '0.0.0.0:8443' },
      'cert-file': { type: 'string' },
      'key-file': { type: 'string' },
      'host-path': { type: 'string', default: '/var/log/services' },
      'mount-path': { type: 'string', default: '/var/log/service' },
      path: { type: 'string', default: '/mutate' },
    },
  });
  if (!values['cert-file'] || !values['key-file'])
    throw usageError('webhook needs --cert-file and --key-file');
  for (const k of ['host-path', 'mount-path', 'path'] as const) {
    if (!values[k]?.startsWith('/')) throw usageError(`--${k} must be an absolute path`);
  }
  return {
    listen: values.listen!,
    certFile: values['cert-file'],
    keyFile: values['key-file'],
    hostPath: values['host-path']!,
    mountPath: values['mount-path']!,
    path: values.path,
  };
}

/**
 * Runs `wharf webhook` until SIGTERM/SIGINT, then stops accepting and lets in-flight reviews
 * finish. Resolves once listening; the process exits from the signal handler.
 */
export async function runWebhook(args: string[], log: Log = stderrLog): Promise<WebhookHandle> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(WEBHOOK_HELP);
    process.exit(0);
  }
  const opts = parseWebhookArgs(args);
  const handle = await startWebhook({ ...opts, log });
  log('info', 'webhook: listening', {
    ...handle.address,
    hostPath: opts.hostPath,
    mountPath: opts.mountPath,
  });
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log('info', `webhook: received ${sig}, stopping`);
    handle.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return handle;
}
