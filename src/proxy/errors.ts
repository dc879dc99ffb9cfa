// Error responses: a JSON body naming project, port, instance and reason. Cheap to build; never
// echoes internal addresses (those go to the log, not to clients).

import type { ServerResponse } from 'node:http';
import type { AttemptError } from '../model/outcome.ts';

export interface ErrorBody {
  readonly error: string;
  readonly reason: string;
  readonly project?: string;
  readonly port?: string;
  readonly instance?: string;
}

const TITLES: Record<number, string> = {
  400: 'bad request',
  404: 'not found',
  408: 'request timeout',
  413: 'payload too large',
  429: 'too many requests',
  431: 'request header fields too large',
  502: 'bad gateway',
  503: 'service unavailable',
  504: 'gateway timeout',
  508: 'loop detected',
};

export function errorTitle(status: number): string {
  return TITLES[status] ?? 'error';
}

export function sendError(
  res: ServerResponse,
  status: number,
  body: Omit<ErrorBody, 'error'>,
  extraHeaders?: Record<string, string>,
): number {
  const payload = JSON.stringify({ error: errorTitle(status), ...body });
  if (!res.headersSent) {
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload),
      'cache-control': 'no-store',
      ...extraHeaders,
    });
  }
  res.end(payload);
  return Buffer.byteLength(payload);
}

/** undici error -> the outcome vocabulary shared with health/. */
export function classifyError(err: Error & { code?: string }): AttemptError {
  if (err.name === 'HTTPParserError') return 'invalid-response';
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connect-refused';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connect-timeout';
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'response-timeout';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return 'reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'connect-error';
    case 'UND_ERR_ABORTED':
      return 'cancelled';
    default:
      if (
        err.code?.startsWith('HPE_') ||
        err.code === 'UND_ERR_INFO' ||
        err.code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'
      )
        return 'invalid-response';
      return 'reset';
  }
}

/** Nothing reached the upstream: safe to retry any method elsewhere. */
export function isConnectFailure(e: AttemptError): boolean {
  return e === 'connect-refused' || e === 'connect-timeout' || e === 'connect-error';
}

export function statusForError(e: AttemptError): number {
  return e === 'response-timeout' || e === 'connect-timeout' ? 504 : 502;
}
