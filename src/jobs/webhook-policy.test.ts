import { describe, expect, it } from 'vitest';
import { webhookPolicySchema, type WebhookPolicy } from '../config/jobs-schema.js';
import { checkResolvedAddress, checkWebhookUrl, classifyAddress } from './webhook-policy.js';

const policy = (over: Partial<WebhookPolicy> = {}): WebhookPolicy => ({ ...webhookPolicySchema.parse({}), ...over });
const defaults = policy();

describe('checkWebhookUrl', () => {
  it('allows a public https URL (and http by default)', () => {
    expect(checkWebhookUrl('https://hooks.example.com/tollgate?x=1', defaults)).toBeUndefined();
    expect(checkWebhookUrl('https://93.184.216.34:8443/hook', defaults)).toBeUndefined();
    expect(checkWebhookUrl('http://hooks.example.com/', defaults)).toBeUndefined();
    expect(checkWebhookUrl('https://[2606:2800:220:1:248:1893:25c8:1946]/', defaults)).toBeUndefined();
  });

  it('refuses http:// when allowHttp is false, naming the rule', () => {
    const why = checkWebhookUrl('http://hooks.example.com/', policy({ allowHttp: false }));
    expect(why).toMatch(/^webhook_url: .*jobs\.webhooks\.allowHttp/);
    expect(checkWebhookUrl('https://hooks.example.com/', policy({ allowHttp: false }))).toBeUndefined();
  });

  it.each(['ftp://hooks.example.com/x', 'file:///etc/passwd', 'javascript:alert(1)', 'ws://hooks.example.com/'])(
    'refuses the scheme of %s',
    (url) => {
      expect(checkWebhookUrl(url, defaults)).toMatch(/only http:\/\/ and https:\/\//);
    },
  );

  it.each(['not a url', '/relative/path', '', 'https://'])('refuses %j as not a URL', (url) => {
    expect(checkWebhookUrl(url, defaults)).toMatch(/^webhook_url: /);
  });

  it.each(['https://user:pass@hooks.example.com/', 'https://user@hooks.example.com/', 'https://:pass@hooks.example.com/'])(
    'refuses credentials in %s',
    (url) => {
      expect(checkWebhookUrl(url, defaults)).toMatch(/credentials/);
    },
  );

  it('refuses a very long URL', () => {
    expect(checkWebhookUrl(`https://hooks.example.com/${'a'.repeat(3000)}`, defaults)).toMatch(/longer than/);
  });

  const loopback = [
    'http://localhost:8080/hook',
    'http://LOCALHOST./hook',
    'http://api.localhost/hook',
    'http://127.0.0.1/hook',
    'http://127.1.2.3/hook',
    'http://[::1]/hook',
    'http://2130706433/hook', // 127.0.0.1 as one decimal number
    'http://0x7f.1/hook', // hex + short form
    'http://0177.0.0.1/hook', // octal
    'http://127.1/hook',
    'http://[::ffff:127.0.0.1]/hook', // IPv4-mapped IPv6
    'http://[0:0:0:0:0:ffff:7f00:1]/hook',
    'http://[64:ff9b::127.0.0.1]/hook', // NAT64
    'http://0.0.0.0/hook', // "this host": reaches the local machine
    'http://[::]/hook',
  ];
  it.each(loopback)('refuses loopback %s by default; allowLoopback allows it', (url) => {
    expect(checkWebhookUrl(url, defaults)).toMatch(/loopback addresses are not allowed \(jobs\.webhooks\.allowLoopback\)/);
    expect(checkWebhookUrl(url, policy({ allowLoopback: true }))).toBeUndefined();
    // allowPrivate is not allowLoopback
    expect(checkWebhookUrl(url, policy({ allowPrivate: true }))).toMatch(/allowLoopback/);
  });

  const privateUrls = [
    'http://10.0.0.5/hook',
    'http://10.255.255.255/hook',
    'http://172.16.0.1/hook',
    'http://172.31.255.254/hook',
    'http://192.168.1.10/hook',
    'http://100.64.0.1/hook', // CGNAT
    'http://169.254.169.254/latest/meta-data/', // cloud metadata
    'http://0xa9fea9fe/', // 169.254.169.254 in hex
    'http://[fd00::1]/hook',
    'http://[fd00::]/hook',
    'http://[fc00::1]/hook',
    'http://[fe80::1]/hook',
    'http://[::ffff:10.1.2.3]/hook',
    'http://[::ffff:169.254.169.254]/hook',
  ];
  it.each(privateUrls)('refuses private %s by default; allowPrivate allows it', (url) => {
    expect(checkWebhookUrl(url, defaults)).toMatch(/private addresses are not allowed \(jobs\.webhooks\.allowPrivate\)/);
    expect(checkWebhookUrl(url, policy({ allowPrivate: true }))).toBeUndefined();
    expect(checkWebhookUrl(url, policy({ allowLoopback: true }))).toMatch(/allowPrivate/);
  });

  it('does not mistake neighbours of private ranges for private', () => {
    for (const url of ['http://172.15.255.255/', 'http://172.32.0.1/', 'http://100.63.255.255/', 'http://100.128.0.1/', 'http://11.0.0.1/', 'http://[fe00::1]/', 'http://[2001:db8::1]/']) {
      expect(checkWebhookUrl(url, defaults), url).toBeUndefined();
    }
  });

  it.each(['http://224.0.0.1/', 'http://239.255.255.250/', 'http://255.255.255.255/', 'http://240.0.0.1/', 'http://[ff02::1]/'])(
    'refuses multicast and broadcast %s whatever the flags',
    (url) => {
      expect(checkWebhookUrl(url, policy({ allowLoopback: true, allowPrivate: true }))).toMatch(/multicast, broadcast or reserved/);
    },
  );

  describe('hosts allow-list', () => {
    const p = policy({ hosts: ['hooks.example.com', '*.acme.io', '203.0.113.7'] });

    it('allows exact names and subdomains of a *.suffix entry, case- and trailing-dot-insensitive', () => {
      expect(checkWebhookUrl('https://hooks.example.com/x', p)).toBeUndefined();
      expect(checkWebhookUrl('https://HOOKS.Example.com./x', p)).toBeUndefined();
      expect(checkWebhookUrl('https://a.acme.io/x', p)).toBeUndefined();
      expect(checkWebhookUrl('https://a.b.acme.io/x', p)).toBeUndefined();
      expect(checkWebhookUrl('https://203.0.113.7/x', p)).toBeUndefined();
    });

    it('refuses other hosts, naming the rule', () => {
      for (const url of ['https://example.com/', 'https://other.example.com/', 'https://acme.io/', 'https://evilacme.io/', 'https://acme.io.evil.com/', 'https://203.0.113.8/']) {
        expect(checkWebhookUrl(url, p), url).toMatch(/not in the allow-list \(jobs\.webhooks\.hosts\)/);
      }
    });

    it('does not lift the address rules: a listed loopback name or address still needs allowLoopback', () => {
      const local = policy({ hosts: ['localhost', '127.0.0.1'] });
      expect(checkWebhookUrl('http://localhost:9/x', local)).toMatch(/allowLoopback/);
      expect(checkWebhookUrl('http://127.0.0.1:9/x', local)).toMatch(/allowLoopback/);
      expect(checkWebhookUrl('http://localhost:9/x', { ...local, allowLoopback: true })).toBeUndefined();
    });
  });
});

describe('checkResolvedAddress', () => {
  it('allows public addresses', () => {
    expect(checkResolvedAddress('93.184.216.34', 4, defaults)).toBeUndefined();
    expect(checkResolvedAddress('2606:2800:220:1:248:1893:25c8:1946', 6, defaults)).toBeUndefined();
  });

  it('refuses a name resolving to loopback or private unless allowed (DNS rebinding)', () => {
    expect(checkResolvedAddress('127.0.0.1', 4, defaults, 'rebind.example.com')).toBe(
      'refused: loopback address (rebind.example.com resolves to one); loopback addresses are not allowed (jobs.webhooks.allowLoopback)',
    );
    expect(checkResolvedAddress('::1', 6, defaults)).toMatch(/allowLoopback/);
    expect(checkResolvedAddress('::ffff:127.0.0.1', 6, defaults)).toMatch(/allowLoopback/);
    expect(checkResolvedAddress('127.0.0.1', 4, policy({ allowLoopback: true }))).toBeUndefined();
    expect(checkResolvedAddress('10.1.2.3', 4, defaults)).toMatch(/allowPrivate/);
    expect(checkResolvedAddress('169.254.169.254', 4, defaults)).toMatch(/allowPrivate/);
    expect(checkResolvedAddress('fe80::1%eth0', 6, defaults)).toMatch(/allowPrivate/);
    expect(checkResolvedAddress('10.1.2.3', 'IPv4', policy({ allowPrivate: true }))).toBeUndefined();
  });

  it('refuses what is not an IP address', () => {
    expect(checkResolvedAddress('example.com', 4, defaults)).toMatch(/did not resolve to an IP address/);
  });
});

describe('classifyAddress', () => {
  it('classifies', () => {
    const cases: Array<[string, ReturnType<typeof classifyAddress>]> = [
      ['8.8.8.8', 'public'],
      ['127.255.0.1', 'loopback'],
      ['[::1]', 'loopback'],
      ['172.20.1.1', 'private'],
      ['fdff:ffff::1', 'private'],
      ['ff05::2', 'not_unicast'],
      ['hooks.example.com', undefined],
    ];
    for (const [address, kind] of cases) expect(classifyAddress(address), address).toBe(kind);
  });
});

describe('IPv4 embedded in IPv6 (issue 14: decoded in every form before deciding)', () => {
  // Each form with 127.0.0.1 (loopback), 10.1.2.3 / 169.254.169.254 (private) and 8.8.8.8 (public) inside.
  const forms: Array<[string, string, string, string]> = [
    // form, loopback, private, public
    ['IPv4-mapped ::ffff:a.b.c.d', '::ffff:127.0.0.1', '::ffff:169.254.169.254', '::ffff:8.8.8.8'],
    ['IPv4-compatible ::a.b.c.d', '::127.0.0.1', '::10.1.2.3', '::8.8.8.8'],
    ['IPv4-translated ::ffff:0:a.b.c.d', '::ffff:0:7f00:1', '::ffff:0:a01:203', '::ffff:0:808:808'],
    ['NAT64 64:ff9b::/96', '64:ff9b::7f00:1', '64:ff9b::a01:203', '64:ff9b::808:808'],
    ['local-use NAT64 64:ff9b:1::/48 (RFC 8215), /96', '64:ff9b:1::7f00:1', '64:ff9b:1::a01:203', '64:ff9b:1::808:808'],
    ['6to4 2002::/16', '2002:7f00:1::1', '2002:a01:203::1', '2002:808:808::1'],
    ['Teredo 2001::/32 (client obfuscated)', '2001:0:4136:e378:8000:63bf:80ff:fffe', '2001:0:4136:e378:8000:63bf:f5fe:fdfc', '2001:0:4136:e378:8000:63bf:f7f7:f7f7'],
    ['ISATAP ::5efe:a.b.c.d', '2001:db8::5efe:7f00:1', 'fe80::5efe:a01:203', '2001:db8::200:5efe:808:808'],
  ];

  it.each(forms)('%s: classed as the IPv4 address inside', (_form, loop, priv, pub) => {
    expect(classifyAddress(loop), loop).toBe('loopback');
    expect(['private']).toContain(classifyAddress(priv));
    if (_form.startsWith('local-use')) expect(classifyAddress(pub), pub).toBe('private'); // a site's own translator: private whatever it embeds
    else expect(classifyAddress(pub), pub).toBe('public');
  });

  it.each([
    'http://[::127.0.0.1]/hook',
    'http://[::7f00:1]/hook',
    'http://[64:ff9b:1::7f00:1]/hook',
    'http://[2002:7f00:1::1]/hook',
    'http://[::ffff:0:127.0.0.1]/hook',
    'http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook',
    'http://[2001:db8::5efe:127.0.0.1]/hook',
  ])('refuses %s (loopback inside) even with allowPrivate, naming the embedded address', (url) => {
    const why = checkWebhookUrl(url, policy({ allowPrivate: true }));
    expect(why).toMatch(/allowLoopback/);
    expect(why).toContain('127.0.0.1');
    expect(checkWebhookUrl(url, policy({ allowLoopback: true, allowPrivate: true }))).toBeUndefined();
  });

  it('local-use NAT64 (64:ff9b:1::/48) is a site own translator: private whatever it carries, or worse', () => {
    expect(classifyAddress('64:ff9b:1:0:a:102:300::')).toBe('private'); // 10.1.2.3 in the /64 layout of RFC 6052
    expect(classifyAddress('64:ff9b:1:abcd::8.8.8.8')).toBe('private');
    expect(classifyAddress('64:ff9b:1:abcd::127.0.0.1')).toBe('loopback');
  });

  it('refuses multicast inside a 6to4 address whatever the flags', () => {
    expect(checkWebhookUrl('http://[2002:e000:1::1]/', policy({ allowLoopback: true, allowPrivate: true }))).toMatch(/multicast/);
  });

  it('keeps public IPv6 public', () => {
    for (const a of ['2606:2800:220:1:248:1893:25c8:1946', '2a00:1450:4001:80b::200e', '2001:4860:4860::8888', '2001:db8::1']) {
      expect(classifyAddress(a), a).toBe('public');
    }
  });
});

describe('the delivery log names no resolved address (issue 14)', () => {
  it('says "refused: private address" without what the name resolved to', () => {
    const why = checkResolvedAddress('10.20.30.40', 4, defaults, 'internal.corp.example');
    expect(why).toMatch(/^refused: private address/);
    expect(why).not.toContain('10.20.30.40');
    expect(checkResolvedAddress('127.0.0.1', 4, defaults, 'rebind.example.com')).toMatch(/^refused: loopback address/);
    expect(checkResolvedAddress('::ffff:127.0.0.1', 6, defaults, 'x.example')).not.toContain('127.0.0.1');
    expect(checkResolvedAddress('2002:a14:1e28::1', 6, defaults, 'x.example')).toMatch(/^refused: private address/);
    expect(checkResolvedAddress('224.0.0.1', 4, policy({ allowPrivate: true, allowLoopback: true }))).toMatch(/^refused: multicast/);
    expect(checkResolvedAddress('not-an-ip', 4, defaults)).not.toContain('not-an-ip');
  });
});

