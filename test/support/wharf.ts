// Starts Wharf in-process on ephemeral ports from a config object, for data-plane tests.

import { parseConfig } from '../../src/config/load.ts';
import { Wharf, type WharfOptions } from '../../src/main.ts';
import type { Log } from '../../src/util/log.ts';

export interface Started {
  readonly wharf: Wharf;
  readonly url: string;
  readonly admin: string;
  readonly port: number;
  readonly logs: Array<{ level: string; msg: string; fields?: Record<string, unknown> }>;
  stop(): Promise<void>;
}

export async function startWharf(
  config: Record<string, unknown>,
  extra: Partial<WharfOptions> = {},
): Promise<Started> {
  const logs: Started['logs'] = [];
  const log: Log = (level, msg, fields) => logs.push({ level, msg, fields });
  const parsed = parseConfig(
    JSON.stringify({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', domain: 'test.local', ...config }),
    'test',
  );
  const wharf = await Wharf.start({ config: parsed, log, ...extra });
  return {
    wharf,
    url: `http://127.0.0.1:${wharf.frontAddress.port}`,
    admin: `http://127.0.0.1:${wharf.adminAddress.port}`,
    port: wharf.frontAddress.port,
    logs,
    stop: () => wharf.stop(200),
  };
}

/** Sends a request with an explicit Host through undici's fetch-free client, returning status, headers, body. */
export async function get(
  url: string,
  host: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  // biome-ignore lint/suspicious/noExplicitAny: a test helper; each test asserts on the fields it reads.
  json: () => any;
}> {
  const { request } = await import('undici');
  const res = await request(url, {
    method: (init.method ?? 'GET') as 'GET',
    headers: { host, ...init.headers },
    body: init.body,
  });
  const body = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers as Record<string, string | string[] | undefined>,
    body,
    json: () => JSON.parse(body),
  };
}
