// The client address of a connection, as every per-client rule sees it: the peer's address, without
// the `::ffff:` prefix of IPv4 clients on a dual-stack listener.

export function clientAddress(socket: { readonly remoteAddress?: string } | undefined | null): string {
  const a = socket?.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}
