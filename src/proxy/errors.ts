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
  200: 'ok',
  400: 'bad request',
  404: 'not found',
  405: 'method not allowed',
  408: 'request timeout',
  413: 'payload too large',
  417: 'expectation failed',
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

/** An upstream answered with a status outside 100-599: a broken response, like a parse error. */
export class InvalidStatusError extends Error {
  readonly code = 'WHARF_INVALID_STATUS';
  constructor(readonly status: number) {
    super(`the upstream answered with status ${status}, outside 100-599`);
  }
}

/**
 * The error undici 7 raises for an unsolicited `100 Continue` (client-h1.js, onHeadersComplete): it
 * never sends `Expect: 100-continue` over HTTP/1.1, so it treats any 100 as a broken response and
 * destroys the connection with `SocketError('bad response')` before a handler hears of it (other
 * 1xx reach onHeaders and are skipped). The same error is raised for bytes arriving when no
 * request is running, but then no request is there to fail.
 */
export function isUnsolicitedContinue(err: Error & { code?: string }): boolean {
  return err.code === 'UND_ERR_SOCKET' && err.message === 'bad response';
}

/** undici error -> the outcome vocabulary shared with health/. */
export function classifyError(err: Error & { code?: string }): AttemptError {
  if (err.name === 'HTTPParserError' || err instanceof InvalidStatusError) return 'invalid-response';
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
    case 'ETIMEDOUT':
    case 'UND_ERR_SOCKET':
      return 'reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
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
        err.code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' ||
        err.code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE'
      )
        return 'invalid-response';
      return 'reset';
  }
}

/**
 * Who an undici error is evidence against. Only `upstream` errors may count against an instance:
 * refused, timed-out or failed connections, resets, and answers that broke the protocol. undici also
 * fails requests it refuses to send (a target or header it will not write: UND_ERR_INVALID_ARG,
 * UND_ERR_NOT_SUPPORTED; a body shorter or longer than its Content-Length), which is the request's
 * fault, and requests on a pool we closed, which is ours. An error it raises that this list does
 * not know is not blamed on the instance either: one crafted request must never eject anything.
 */
export function blameOf(err: Error & { code?: string }): 'upstream' | 'request' | 'local' {
  if (err.name === 'HTTPParserError' || err instanceof InvalidStatusError) return 'upstream';
  switch (err.code) {
    case 'ECONNREFUSED':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ETIMEDOUT':
    case 'UND_ERR_SOCKET':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'UND_ERR_INFO':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
    case 'H2_REFUSED_STREAM':
      return 'upstream';
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_NOT_SUPPORTED':
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return 'request';
    default:
      return err.code?.startsWith('HPE_') ? 'upstream' : 'local';
  }
}

/** Nothing reached the upstream: safe to retry any method elsewhere. */
export function isConnectFailure(e: AttemptError): boolean {
  return e === 'connect-refused' || e === 'connect-timeout' || e === 'connect-error';
}

export function statusForError(e: AttemptError): number {
  return e === 'response-timeout' || e === 'connect-timeout' ? 504 : 502;
}

/** The `reason` of a 502/503/504 body for an attempt that failed with `kind`. */
export function describeFailure(kind: string, attempts: number): string {
  const tries = attempts > 1 ? ` (after ${attempts} attempts)` : '';
  switch (kind) {
    case 'connect-refused':
      return `connection refused by the upstream${tries}`;
    case 'connect-timeout':
      return `timed out connecting to the upstream${tries}`;
    case 'connect-error':
      return `could not connect to the upstream${tries}`;
    case 'response-timeout':
      return `the upstream did not answer in time${tries}`;
    case 'invalid-response':
      return `the upstream sent an invalid HTTP response${tries}`;
    case 'upstream-5xx':
      return `the upstream answered with an error${tries}`;
    default:
      return `the upstream connection failed${tries}`;
  }
}
