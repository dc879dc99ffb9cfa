// A listener that cannot bind is the most common first-run failure. This turns node's error (a
// stack trace through net.Server internals) into one line: which listener, which address, why, and
// what to do. Pure: the CLI prints the line and exits 1.

export interface ListenerSpec {
  /** What the listener is: `proxy listener`, `admin listener`, `HTTP redirect listener`. */
  readonly name: string;
  /** Where its address is set, for the advice: `--listen HOST:PORT or listen: in the config`. */
  readonly setting: string;
  readonly host: string;
  readonly port: number;
}

interface NetError {
  readonly code?: string;
  readonly syscall?: string;
  readonly address?: string;
  readonly port?: number;
  readonly hostname?: string;
}

const CODES = new Set(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'EAFNOSUPPORT']);

function show(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Which of `listeners` failed: by address and port, else by port, else by host name. */
function which(err: NetError, listeners: readonly ListenerSpec[]): ListenerSpec | undefined {
  const byPort = listeners.filter((l) => err.port !== undefined && l.port === err.port);
  return (
    byPort.find((l) => l.host === err.address) ??
    (byPort.length === 1 ? byPort[0] : undefined) ??
    listeners.find((l) => err.hostname !== undefined && l.host === err.hostname)
  );
}

/**
 * One line for a listen failure (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`, an unresolvable host), or
 * undefined when `err` is something else.
 */
export function explainListenError(err: unknown, listeners: readonly ListenerSpec[]): string | undefined {
  const e = (err ?? {}) as NetError;
  if (!e.code || !CODES.has(e.code)) return undefined;
  if (e.syscall !== 'listen' && e.syscall !== 'bind' && e.syscall !== 'getaddrinfo') return undefined;
  const l = which(e, listeners);
  const port = e.port ?? l?.port ?? 0;
  const host = l?.host ?? e.address ?? e.hostname ?? '';
  const who = l ? `the ${l.name}` : 'a listener';
  const where = show(host, port);
  const change = l ? `choose another address with ${l.setting}` : 'choose another address';
  switch (e.code) {
    case 'EADDRINUSE':
      return `${who} cannot listen on ${where}: the address is already in use (\`ss -ltnp 'sport = :${port}'\` shows by what). Stop that process, or ${change}.`;
    case 'EACCES':
      return port > 0 && port < 1024
        ? `${who} cannot listen on ${where}: permission denied; ports below 1024 need root or the CAP_NET_BIND_SERVICE capability. Use a port of 1024 or more (e.g. ${show(host, 8000 + port)}) with ${l?.setting ?? 'the listener setting'}, or grant the capability: sudo setcap cap_net_bind_service=+ep "$(command -v node)".`
        : `${who} cannot listen on ${where}: permission denied (a security policy forbids it). ${change[0].toUpperCase()}${change.slice(1)}.`;
    case 'EADDRNOTAVAIL':
      return `${who} cannot listen on ${where}: no network interface of this host has the address ${host}. Use one it has (\`ip -brief address\` lists them), 127.0.0.1 for this host only or 0.0.0.0 for every interface: ${change}.`;
    case 'EAFNOSUPPORT':
      return `${who} cannot listen on ${where}: this host has no ${host.includes(':') ? 'IPv6' : 'IPv4'} support. ${change[0].toUpperCase()}${change.slice(1)}.`;
    default:
      return `${who} cannot listen on ${where}: the host name ${host} does not resolve. Use an IP address such as 127.0.0.1 or 0.0.0.0, or ${change}.`;
  }
}

/** The listeners a config opens, with where each is set (flags win over the file). */
export function configListeners(c: {
  readonly listen: { host: string; port: number };
  readonly admin: { host: string; port: number };
  readonly tls?: { readonly redirectHttp?: { host: string; port: number } };
}): ListenerSpec[] {
  const out: ListenerSpec[] = [
    { name: 'proxy listener', setting: '--listen HOST:PORT (or `listen:` in the config)', ...c.listen },
    { name: 'admin listener', setting: '--admin HOST:PORT (or `admin:` in the config)', ...c.admin },
  ];
  const r = c.tls?.redirectHttp;
  if (r) out.push({ name: 'HTTP redirect listener', setting: '`tls.redirect-http:` in the config', ...r });
  return out;
}
