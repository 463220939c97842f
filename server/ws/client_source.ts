/**
 * The client source a WebSocket connection's view instances are charged to (worker/views.ts,
 * VIEW_INSTANCES_READING_TABLE_PER_SOURCE_MAX): its IP address, or for IPv6 its /64 (one host
 * usually owns a whole /64, so per-address shares would not bound it). IPv4-mapped IPv6
 * addresses count as IPv4.
 */
export function clientSource(hostname: string | undefined): string | undefined {
  if (hostname === undefined || hostname === "") return undefined;
  const bare = hostname.startsWith("[") && hostname.endsWith("]")
    ? hostname.slice(1, -1)
    : hostname;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(bare);
  if (mapped) return `ip4:${mapped[1]}`;
  if (!bare.includes(":")) return `ip4:${bare}`;
  const zoneless = bare.split("%")[0].toLowerCase();
  const [head, tail] = zoneless.includes("::") ? zoneless.split("::") : [zoneless, undefined];
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = tail === undefined
    ? left
    : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  const prefix = groups.slice(0, 4).map((group) => (parseInt(group, 16) || 0).toString(16));
  while (prefix.length < 4) prefix.push("0");
  return `ip6:${prefix.join(":")}::/64`;
}
