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
 * IPv4 addresses embedded in IPv6 are decoded in every form before deciding, and the address is
 * classed as the worst of its own IPv6 class and the classes of the IPv4 addresses it carries
 * (`embeddedIPv4`): IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, IPv4-translated
 * ::ffff:0:0:0/96, NAT64 64:ff9b::/96 (and the rest of 64:ff9b::/32), 6to4 2002::/16, Teredo
 * 2001::/32 (its server and its obfuscated client), ISATAP (`::0:5efe:a.b.c.d` and
 * `::200:5efe:a.b.c.d` in any /64). The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) is a
 * site's own translator: private at least, and its /96 form decoded like NAT64.
 *
 * What a webhook's name resolved to is never written to the delivery log a tenant reads: a
 * delivery-time refusal says "refused: private address" and the rule, not the address.
 */
import { BlockList, isIP } from 'node:net';
import type { WebhookPolicy } from '../config/jobs-schema.js';

export type { WebhookPolicy };

export type AddressClass = 'public' | 'loopback' | 'private' | 'not_unicast';

const MAX_URL_LENGTH = 2048;

/** IPv4 subnets per class. */
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

/** IPv6 subnets per class (the IPv4 an address carries is classed apart: `embeddedIPv4`). */
const V6: Record<Exclude<AddressClass, 'public'>, Array<[string, number]>> = {
  loopback: [
    ['::1', 128],
    ['::', 128],
  ],
  private: [
    ['fc00::', 7],
    ['fe80::', 10],
    ['fec0::', 10],
    ['64:ff9b:1::', 48], // local-use NAT64 (RFC 8215): a site's own translator
  ],
  not_unicast: [['ff00::', 8]],
};

function buildList(cls: Exclude<AddressClass, 'public'>): BlockList {
  const list = new BlockList();
  for (const [net, prefix] of V4[cls]) list.addSubnet(net, prefix, 'ipv4');
  for (const [net, prefix] of V6[cls]) list.addSubnet(net, prefix, 'ipv6');
  return list;
}

/** Worst first: a refusal names the first class that applies. */
const LISTS: Array<[Exclude<AddressClass, 'public'>, BlockList]> = [
  ['not_unicast', buildList('not_unicast')],
  ['loopback', buildList('loopback')],
  ['private', buildList('private')],
];
const SEVERITY: Record<AddressClass, number> = { public: 0, private: 1, loopback: 2, not_unicast: 3 };

/** The 16 bytes of an IPv6 address (already checked by isIP, no zone), or undefined. */
function ipv6Bytes(address: string): Uint8Array | undefined {
  let text = address;
  let tail: number[] = [];
  // A trailing dotted quad (::ffff:1.2.3.4) is the last two words.
  const quad = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    tail = [(a << 8) | b, (c << 8) | d];
    text = text.slice(0, quad.index);
    if (!text.endsWith('::')) text = text.slice(0, -1); // the ':' before the quad
  }
  const words = (part: string) => (part === '' ? [] : part.split(':').map((w) => parseInt(w, 16)));
  const halves = text.split('::');
  let all: number[];
  if (halves.length === 1) all = [...words(halves[0]!), ...tail];
  else {
    const left = words(halves[0]!);
    const right = [...words(halves[1]!), ...tail];
    const fill = 8 - left.length - right.length;
    if (fill < 0) return undefined;
    all = [...left, ...new Array<number>(fill).fill(0), ...right];
  }
  if (all.length !== 8 || all.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffff)) return undefined;
  const bytes = new Uint8Array(16);
  all.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  return bytes;
}

const v4At = (b: Uint8Array, i: number, xor = 0) => [b[i]! ^ xor, b[i + 1]! ^ xor, b[i + 2]! ^ xor, b[i + 3]! ^ xor].join('.');
const zero = (b: Uint8Array, from: number, to: number) => b.subarray(from, to).every((x) => x === 0);

/** The IPv4 addresses an IPv6 address carries, in each form that routes to one (see the header). */
export function embeddedIPv4(address: string): string[] {
  const b = ipv6Bytes(address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
  if (!b) return [];
  const w = (i: number) => (b[2 * i]! << 8) | b[2 * i + 1]!;
  const found: string[] = [];
  if (zero(b, 0, 10) && w(5) === 0xffff) found.push(v4At(b, 12)); // IPv4-mapped ::ffff:a.b.c.d
  if (zero(b, 0, 12)) found.push(v4At(b, 12)); // IPv4-compatible ::a.b.c.d (deprecated; :: and ::1 included)
  if (zero(b, 0, 8) && w(4) === 0xffff && w(5) === 0) found.push(v4At(b, 12)); // IPv4-translated ::ffff:0:a.b.c.d
  if (w(0) === 0x64 && w(1) === 0xff9b) found.push(v4At(b, 12)); // NAT64 64:ff9b::/96 and local-use 64:ff9b:1::/48 as /96
  if (w(0) === 0x2002) found.push(v4At(b, 2)); // 6to4 2002:a.b.c.d::/48
  if (w(0) === 0x2001 && w(1) === 0) found.push(v4At(b, 4), v4At(b, 12, 0xff)); // Teredo: server, obfuscated client
  if ((w(4) & 0xfcff) === 0 && w(5) === 0x5efe) found.push(v4At(b, 12)); // ISATAP interface id
  return [...new Set(found)];
}

function classifyV4OrV6(bare: string, type: 'ipv4' | 'ipv6'): AddressClass {
  for (const [cls, list] of LISTS) {
    if (list.check(bare, type)) return cls;
  }
  return 'public';
}

interface Classified {
  cls: AddressClass;
  /** The embedded IPv4 address that decided the class, when one did. */
  via?: string;
}

function classify(address: string): Classified | undefined {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 0) return undefined;
  if (family === 4) return { cls: classifyV4OrV6(bare, 'ipv4') };
  let worst: Classified = { cls: classifyV4OrV6(bare, 'ipv6') };
  for (const v4 of embeddedIPv4(bare)) {
    const cls = classifyV4OrV6(v4, 'ipv4');
    if (SEVERITY[cls] > SEVERITY[worst.cls]) worst = { cls, via: v4 };
  }
  return worst;
}

/** Names that mean this machine whatever DNS says (RFC 6761 `localhost`, and Debian's /etc/hosts aliases). */
const LOOPBACK_NAMES = new Set(['localhost', 'localhost.localdomain', 'ip6-localhost', 'ip6-loopback']);

/**
 * The class of a literal IP address (v4 or v6, without brackets; a `%zone` suffix is ignored);
 * undefined when it is not an IP address. An IPv6 address is classed as the worst of its own
 * class and those of the IPv4 addresses it carries (`embeddedIPv4`).
 */
export function classifyAddress(address: string): AddressClass | undefined {
  return classify(address)?.cls;
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
  const c = classify(host);
  if (c !== undefined) return refusal(c.cls, c.via ? `${host} carries the IPv4 address ${c.via}, which is` : `${host} is`, policy);
  if (isLoopbackName(host)) return refusal('loopback', `${host} is`, policy);
  return undefined;
}

/**
 * Checks one address a webhook host resolved to (delivery time, before connecting). `family` is
 * what dns.lookup reports (4 / 6, or 'IPv4' / 'IPv6'); the address itself decides. `host`, when
 * given, is named in the reason. Returns undefined when allowed, else the reason, which goes to
 * the delivery log the tenant reads: it says what kind of address was refused, never the address
 * (what an internal name resolves to is not the tenant's to learn).
 */
export function checkResolvedAddress(
  address: string,
  family: number | string | undefined,
  policy: WebhookPolicy,
  host?: string,
): string | undefined {
  void family;
  const c = classify(address);
  const name = host ? ` (${host} resolves to one)` : '';
  if (c === undefined) return `refused: ${host ?? 'the host'} did not resolve to an IP address`;
  switch (c.cls) {
    case 'public':
      return undefined;
    case 'loopback':
      return policy.allowLoopback ? undefined : `refused: loopback address${name}; loopback addresses are not allowed (jobs.webhooks.allowLoopback)`;
    case 'private':
      return policy.allowPrivate ? undefined : `refused: private address${name}; private addresses are not allowed (jobs.webhooks.allowPrivate)`;
    case 'not_unicast':
      return `refused: multicast, broadcast or reserved address${name}, which is never allowed`;
  }
}
