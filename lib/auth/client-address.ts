import ipaddr from 'ipaddr.js';

/**
 * The key failed logins are counted under: an IPv4 address as it is, an IPv6 address by
 * its /64 (one subscriber gets a whole /64, so counting single IPv6 addresses would hand
 * an attacker 2^64 fresh starts). IPv4-mapped IPv6 (`::ffff:1.2.3.4`) counts as IPv4.
 */
export function clientAddressKey(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined || !ipaddr.isValid(remoteAddress)) return 'unknown';
  const address = ipaddr.process(remoteAddress);
  if (address.kind() === 'ipv4') return address.toString();
  const parts = (address as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
}
