import { parseAddress } from "../../lib/client_address.ts";

/**
 * The client source a WebSocket connection's view instances are charged to (worker/views.ts,
 * VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX): its IP address, or for IPv6 its /64 (one host
 * usually owns a whole /64, so per-address shares would not bound it). IPv4-mapped IPv6
 * addresses count as IPv4 (lib/client_address.ts parses both). A name that is not an address
 * (Deno.serve gives none) is its own source.
 */
export function clientSource(hostname: string | undefined): string | undefined {
  if (hostname === undefined || hostname === "") return undefined;
  const bytes = parseAddress(hostname);
  if (bytes === undefined) return `name:${hostname}`;
  if (bytes.length === 4) return `ip4:${bytes.join(".")}`;
  const prefix: string[] = [];
  for (let i = 0; i < 8; i += 2) prefix.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return `ip6:${prefix.join(":")}::/64`;
}
