// gRPC over the pipeline: what Wharf says itself to a gRPC client. A gRPC client reads the status
// from `grpc-status` (in trailers, or in a trailers-only response), not from the HTTP status, and
// an HTML or JSON error page is just a broken message to it. So for a gRPC request every answer of
// ours is HTTP 200 with `grpc-status` and `grpc-message`, in one HEADERS frame that ends the stream.

/** gRPC status codes (grpc/doc/statuscodes.md) that Wharf produces. */
export const GrpcStatus = {
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

export function isGrpc(contentType: string): boolean {
  // `application/grpc`, `application/grpc+proto`, `application/grpc+json`...; not grpc-web, which
  // is plain HTTP/1.1-compatible framing a browser speaks.
  return (
    contentType.length >= 16 &&
    contentType.slice(0, 16).toLowerCase() === 'application/grpc' &&
    (contentType.length === 16 || contentType[16] === '+' || contentType[16] === ';')
  );
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** `grpc-timeout` (`TimeoutValue TimeoutUnit`: 1 to 8 digits and one of H M S m u n) in ms. */
export function grpcTimeoutMs(value: string): number | undefined {
  const v = value.trim();
  if (v.length < 2 || v.length > 9) return undefined;
  const unit = UNIT_MS[v[v.length - 1]];
  const digits = v.slice(0, -1);
  if (unit === undefined || !/^\d+$/.test(digits)) return undefined;
  return Number(digits) * unit;
}

/**
 * The gRPC status for an answer of ours with HTTP status `status` and reason code `error`: the
 * HTTP-to-gRPC mapping of grpc/doc/http-grpc-status-mapping.md, with the cases the mapping cannot
 * know made precise (a timeout is DEADLINE_EXCEEDED, an oversized body RESOURCE_EXHAUSTED, no route
 * UNIMPLEMENTED as Envoy answers).
 */
export function grpcStatusFor(status: number, error: string): number {
  if (error === 'grpc-needs-h2c') return GrpcStatus.UNIMPLEMENTED;
  if (error === 'response-timeout' || error === 'connect-timeout' || status === 504)
    return GrpcStatus.DEADLINE_EXCEEDED;
  switch (status) {
    case 400:
    case 431:
      return GrpcStatus.INTERNAL;
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 413:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 429:
    case 502:
    case 503:
    case 508:
      return GrpcStatus.UNAVAILABLE;
    default:
      return status === 200 ? 0 : GrpcStatus.UNKNOWN;
  }
}

/** `grpc-message` is percent-encoded (RFC 3986 unreserved and printable ASCII kept, except '%'). */
export function grpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
