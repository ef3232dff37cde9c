/**
 * Where job webhooks may be sent (`jobs.webhooks`): the same rules are applied twice.
 *
 * - At submit time, `checkWebhookUrl` validates the URL as written: http(s) only (http only with
 *   `allowHttp`), no credentials, the host allow-list (`hosts`), and literal addresses (any form
 *   WHATWG URL normalizes: `2130706433`, `0x7f.1`, `[::ffff:127.0.0.1]`) and `localhost` names
 *   classified as loopback or private and refused unless `allowLoopback` / `allowPrivate`.
 * - At delivery time, the dispatcher (src/jobs/webhooks.ts) checks the URL again (the policy may
 *   have changed since) and `checkResolvedAddress` checks every address a name resolves to, in
 *   the connection's own DNS lookup, so the address connected to is the one checked: a public
 *   name that resolves to 127.0.0.1 (DNS rebinding) is refused there.
 *
 * Address classes:
 * - loopback (`allowLoopback`): 127.0.0.0/8, ::1, and the "this host" addresses 0.0.0.0/8 and ::,
 *   which reach the local machine when connected to;
 * - private (`allowPrivate`): 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), 169.254/16
 *   (link-local, including the cloud metadata address 169.254.169.254), fc00::/7, fe80::/10,
 *   fec0::/10;
 * - not unicast (always refused, no flag allows them): multicast 224/4 and ff00::/8, the reserved
 *   240/4 including the broadcast address 255.255.255.255. No HTTP server answers there.
 * IPv4 addresses embedded in IPv6 (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96) are classed as
 * the IPv4 address they carry.
 */
import { BlockList, isIP } from 'node:net';
import type { WebhookPolicy } from '../config/jobs-schema.js';

export type { WebhookPolicy };

export type AddressClass = 'public' | 'loopback' | 'private' | 'not_unicast';

const MAX_URL_LENGTH = 2048;

/** IPv4 subnets per class; each is also added in its IPv4-mapped and NAT64 IPv6 forms. */
const V4: Record<Exclude<AddressClass, 'public'>, Array<[string, number]>> = {
  loopback: [
    ['127.0.0.0', 8],
    ['0.0.0.0', 8],
  ],
  private: [
    ['10.0.0.0', 8],
    ['172.16.0.0', 12],
    ['192.168.0.0', 16],
    ['100.64.0.0', 10],
    ['169.254.0.0', 16],
  ],
  not_unicast: [
    ['224.0.0.0', 4],
    ['240.0.0.0', 4],
  ],
};

const V6: Record<Exclude<AddressClass, 'public'>, Array<[string, number]>> = {
  loopback: [
    ['::1', 128],
    ['::', 128],
  ],
  private: [
    ['fc00::', 7],
    ['fe80::', 10],
    ['fec0::', 10],
  ],
  not_unicast: [['ff00::', 8]],
};

function buildList(cls: Exclude<AddressClass, 'public'>): BlockList {
  const list = new BlockList();
  for (const [net, prefix] of V4[cls]) {
    list.addSubnet(net, prefix, 'ipv4');
    list.addSubnet(`::ffff:${net}`, 96 + prefix, 'ipv6');
    list.addSubnet(`64:ff9b::${net}`, 96 + prefix, 'ipv6');
  }
  for (const [net, prefix] of V6[cls]) list.addSubnet(net, prefix, 'ipv6');
  return list;
}

const LISTS: Array<[Exclude<AddressClass, 'public'>, BlockList]> = [
  ['not_unicast', buildList('not_unicast')],
  ['loopback', buildList('loopback')],
  ['private', buildList('private')],
];

/** Names that mean this machine whatever DNS says (RFC 6761 `localhost`, and Debian's /etc/hosts aliases). */
const LOOPBACK_NAMES = new Set(['localhost', 'localhost.localdomain', 'ip6-localhost', 'ip6-loopback']);

/**
 * The class of a literal IP address (v4 or v6, without brackets; a `%zone` suffix is ignored);
 * undefined when it is not an IP address.
 */
export function classifyAddress(address: string): AddressClass | undefined {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 0) return undefined;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const [cls, list] of LISTS) {
    if (list.check(bare, type)) return cls;
  }
  return 'public';
}

function isLoopbackName(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || host.endsWith('.localhost');
}

/** A refusal for an address of class `cls`, or undefined when the policy allows it. */
function refusal(cls: AddressClass, what: string, policy: WebhookPolicy): string | undefined {
  switch (cls) {
    case 'public':
      return undefined;
    case 'loopback':
      return policy.allowLoopback
        ? undefined
        : `webhook_url: ${what} a loopback address; loopback addresses are not allowed (jobs.webhooks.allowLoopback)`;
    case 'private':
      return policy.allowPrivate
        ? undefined
        : `webhook_url: ${what} a private or link-local address; private addresses are not allowed (jobs.webhooks.allowPrivate)`;
    case 'not_unicast':
      return `webhook_url: ${what} a multicast, broadcast or reserved address, which is never allowed`;
  }
}

/** Lower case, no brackets around IPv6, no trailing dot, IP literals in their canonical form. */
function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (h.endsWith('.')) h = h.slice(0, -1);
  try {
    const parsed = new URL(`http://${isIP(h) === 6 ? `[${h}]` : h}/`).hostname;
    return parsed.replace(/^\[|\]$/g, '').replace(/\.$/, '');
  } catch {
    return h;
  }
}

function hostAllowed(host: string, hosts: readonly string[]): boolean {
  for (const entry of hosts) {
    const e = entry.trim().toLowerCase();
    if (e.startsWith('*.')) {
      const suffix = `.${normalizeHost(e.slice(2))}`;
      if (host.length > suffix.length && host.endsWith(suffix)) return true;
    } else if (normalizeHost(e) === host) {
      return true;
    }
  }
  return false;
}

/**
 * Checks a webhook URL against the policy (submit time, and again before each delivery).
 * Returns undefined when it is allowed, else the reason, naming the rule.
 */
export function checkWebhookUrl(url: string, policy: WebhookPolicy): string | undefined {
  if (typeof url !== 'string' || url.length === 0) return 'webhook_url: must be a non-empty URL';
  if (url.length > MAX_URL_LENGTH) return `webhook_url: longer than ${MAX_URL_LENGTH} characters`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'webhook_url: not a valid absolute URL';
  }
  if (parsed.protocol === 'http:') {
    if (!policy.allowHttp) return 'webhook_url: http:// URLs are not allowed, use https:// (jobs.webhooks.allowHttp)';
  } else if (parsed.protocol !== 'https:') {
    return `webhook_url: only http:// and https:// URLs are accepted, not ${parsed.protocol}//`;
  }
  if (parsed.username !== '' || parsed.password !== '') {
    return 'webhook_url: credentials in the URL (user:password@) are not allowed';
  }
  const host = normalizeHost(parsed.hostname);
  if (host === '') return 'webhook_url: has no host';
  if (policy.hosts.length > 0 && !hostAllowed(host, policy.hosts)) {
    return `webhook_url: host ${host} is not in the allow-list (jobs.webhooks.hosts)`;
  }
  const cls = classifyAddress(host);
  if (cls !== undefined) return refusal(cls, `${host} is`, policy);
  if (isLoopbackName(host)) return refusal('loopback', `${host} is`, policy);
  return undefined;
}

/**
 * Checks one address a webhook host resolved to (delivery time, before connecting). `family` is
 * what dns.lookup reports (4 / 6, or 'IPv4' / 'IPv6'); the address itself decides. `host`, when
 * given, is named in the reason. Returns undefined when allowed, else the reason.
 */
export function checkResolvedAddress(
  address: string,
  family: number | string | undefined,
  policy: WebhookPolicy,
  host?: string,
): string | undefined {
  const cls = classifyAddress(address);
  const name = host ? `${host} resolves to ${address},` : `resolved address ${address} is`;
  if (cls === undefined) return `webhook_url: ${name} not an IP address (family ${String(family)})`;
  return refusal(cls, name, policy);
}
