/**
 * Who a request comes from. By default that is the TCP peer. Behind a reverse proxy the peer is
 * the proxy, so every client would look alike (one per-address share for everyone; every client
 * "loopback" when the proxy runs on the same host). The operator names the proxies it trusts
 * (`--trusted-proxy ADDRESS[/PREFIX]`, repeatable); for a request whose peer is one of them, the
 * client is the right-most X-Forwarded-For entry that is not itself a trusted proxy (entries left
 * of it were written by the client and prove nothing). A header from an untrusted peer is ignored.
 */

/** An address range: 4 bytes (IPv4) or 16 (IPv6) and how many leading bits must match. */
export interface AddressRange {
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/**
 * The bytes of an IP address: 4 for IPv4 (IPv4-mapped IPv6 included), 16 for IPv6; undefined if
 * `text` is not an address. Accepts brackets and a zone (`[fe80::1%eth0]`).
 */
export function parseAddress(text: string): Uint8Array | undefined {
  let bare = text.trim();
  if (bare.startsWith("[") && bare.endsWith("]")) bare = bare.slice(1, -1);
  const zone = bare.indexOf("%");
  if (zone >= 0) bare = bare.slice(0, zone);
  if (!bare.includes(":")) return parseIPv4(bare);
  const bytes = parseIPv6(bare.toLowerCase());
  if (bytes === undefined) return undefined;
  const mapped = bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}

function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^(0|[1-9]\d{0,2})$/.test(parts[i])) return undefined;
    const value = Number(parts[i]);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

function parseIPv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string): number[] | undefined => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIPv4(part);
        if (v4 === undefined) return undefined;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-f]{1,4}$/.test(part)) {
        out.push(parseInt(part, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/** `ADDRESS` or `ADDRESS/PREFIX` (IPv4 or IPv6); throws a RangeError naming the flag's value. */
export function parseTrustedProxy(text: string): AddressRange {
  const slash = text.indexOf("/");
  const addressText = slash >= 0 ? text.slice(0, slash) : text;
  const bytes = parseAddress(addressText);
  if (bytes === undefined) {
    throw new RangeError(
      `Invalid --trusted-proxy "${text}": expected an IP address or a range like 10.0.0.0/8 or fd00::/8`,
    );
  }
  const bits = bytes.length * 8;
  if (slash < 0) return { bytes, prefix: bits };
  const prefixText = text.slice(slash + 1);
  const prefix = Number(prefixText);
  // A mapped IPv6 range (::ffff:10.0.0.0/104) counts its prefix over the 16 bytes.
  const mappedShift = bytes.length === 4 && addressText.includes(":") ? 96 : 0;
  if (!/^\d{1,3}$/.test(prefixText) || prefix - mappedShift < 0 || prefix - mappedShift > bits) {
    throw new RangeError(`Invalid --trusted-proxy "${text}": the prefix must be 0-${bits}`);
  }
  return { bytes, prefix: prefix - mappedShift };
}

export class TrustedProxies {
  readonly #ranges: readonly AddressRange[];

  constructor(ranges: readonly AddressRange[]) {
    this.#ranges = ranges;
  }

  /** From the flag's values; throws on the first invalid one. */
  static parse(texts: readonly string[]): TrustedProxies {
    return new TrustedProxies(texts.map(parseTrustedProxy));
  }

  get size(): number {
    return this.#ranges.length;
  }

  contains(address: string | undefined): boolean {
    if (address === undefined) return false;
    const bytes = parseAddress(address);
    if (bytes === undefined) return false;
    return this.#ranges.some((range) => inRange(bytes, range));
  }
}

function inRange(bytes: Uint8Array, range: AddressRange): boolean {
  if (bytes.length !== range.bytes.length) return false;
  const whole = range.prefix >> 3;
  for (let i = 0; i < whole; i++) if (bytes[i] !== range.bytes[i]) return false;
  const rest = range.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (bytes[whole] & mask) === (range.bytes[whole] & mask);
}

/** The TCP peer's address from Deno.serve's handler info (Hono's `c.env`); undefined elsewhere. */
export function peerHostname(env: unknown): string | undefined {
  try {
    const address = (env as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr;
    return typeof address?.hostname === "string" ? address.hostname : undefined;
  } catch {
    return undefined; // the request is gone
  }
}

/** Who a request comes from (resolveClient). */
export interface ClientAddress {
  /** The client's address (undefined: the peer's is not known). */
  hostname: string | undefined;
  /**
   * False when a trusted proxy's X-Forwarded-For has an entry that is not an address where the
   * walk needed it: `hostname` is then the last trusted hop (a proxy), standing in for a client
   * that is not known. Good enough to share per-address limits; never a proof of who it is (a
   * proxy on loopback would make every such client look local).
   */
  identified: boolean;
}

/**
 * The client's address: the peer, or, when the peer is a trusted proxy, the right-most
 * X-Forwarded-For entry that is not a trusted proxy. An entry may carry a port (`1.2.3.4:5678`,
 * `[2001:db8::1]:443`: some proxies write them), which is dropped. A malformed entry stops the
 * walk there: the last trusted hop is then taken as the client, not identified (an unreadable
 * header must not pick the address).
 */
export function resolveClient(
  peer: string | undefined,
  forwardedFor: string | null | undefined,
  trusted: TrustedProxies | undefined,
): ClientAddress {
  if (trusted === undefined || trusted.size === 0 || !trusted.contains(peer)) {
    return { hostname: peer, identified: true };
  }
  if (!forwardedFor) return { hostname: peer, identified: true };
  let client = peer;
  const hops = forwardedFor.split(",");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hopAddress(hops[i].trim());
    if (hop === undefined) return { hostname: client, identified: false };
    client = hop;
    if (!trusted.contains(hop)) return { hostname: hop, identified: true };
  }
  return { hostname: client, identified: true };
}

/** resolveClient's address alone (for per-address shares). */
export function clientHostname(
  peer: string | undefined,
  forwardedFor: string | null | undefined,
  trusted: TrustedProxies | undefined,
): string | undefined {
  return resolveClient(peer, forwardedFor, trusted).hostname;
}

/** An X-Forwarded-For entry's address (brackets and any port dropped); undefined: not one. */
function hopAddress(hop: string): string | undefined {
  const withPort = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(hop) ??
    /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(hop);
  if (withPort && withPort[2] !== undefined && Number(withPort[2]) > 65535) return undefined;
  const address = withPort ? withPort[1] : hop;
  return parseAddress(address) === undefined ? undefined : address;
}
