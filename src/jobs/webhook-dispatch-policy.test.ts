/**
 * The WebhookDispatcher enforcing jobs.webhooks when it delivers: the URL checked again, every
 * address a name resolves to checked in the connection's lookup (DNS rebinding), and a delivery
 * log that never tells the tenant an address.
 */
import { type AddressInfo, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
// @ts-ignore TS6059: test helpers live outside tsconfig's rootDir (src); the import is type-checked all the same.
import { FakeOutbox, cleanUp, dispatcher, makeJob, policy, receiver, until } from '../../test/helpers/webhook-dispatcher.js';

afterEach(cleanUp);

describe('WebhookDispatcher: the delivery policy at connect time', () => {
  it('refuses loopback when allowLoopback is false: a failed attempt with the policy reason, no request sent', async () => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: rx.url });
    const store = new FakeOutbox().add(job);
    dispatcher(store, { policy: policy({ allowLoopback: false }) });
    await until(() => store.records.length === 1);
    const rec = store.records[0]!;
    expect(rec.delivery.statusCode).toBeNull();
    expect(rec.delivery.error).toMatch(/loopback addresses are not allowed \(jobs\.webhooks\.allowLoopback\)/);
    expect(rec.next.state).toBe('pending');
    expect(rx.deliveries).toHaveLength(0);
  });

  it('refuses at connect a name that resolves to loopback (DNS rebinding)', async () => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: `http://hooks.example.test:${rx.port}/hook` });
    const store = new FakeOutbox().add(job);
    const resolved: string[] = [];
    dispatcher(store, {
      // the URL passes (a public-looking name on the allow-list); the name resolves to 127.0.0.1
      policy: policy({ allowLoopback: false, hosts: ['hooks.example.test'] }),
      resolve: async (host) => {
        resolved.push(host);
        return [{ address: '127.0.0.1', family: 4 }];
      },
    });
    await until(() => store.records.length === 1);
    expect(resolved).toContain('hooks.example.test');
    expect(store.records[0]!.delivery.statusCode).toBeNull();
    // The delivery log (the tenant's) says what kind of address was refused, never the address.
    expect(store.records[0]!.delivery.error).toBe(
      'refused: loopback address (hooks.example.test resolves to one); loopback addresses are not allowed (jobs.webhooks.allowLoopback)',
    );
    expect(rx.deliveries).toHaveLength(0);
  });

  it('refuses when any resolved address is not allowed, even if another is public', async () => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: `http://hooks.example.test:${rx.port}/hook` });
    const store = new FakeOutbox().add(job);
    dispatcher(store, {
      policy: policy({ allowLoopback: false }),
      resolve: async () => [
        { address: '93.184.216.34', family: 4 },
        { address: '169.254.169.254', family: 4 },
      ],
    });
    await until(() => store.records.length === 1);
    expect(store.records[0]!.delivery.error).toMatch(/^refused: private address.*allowPrivate/);
    expect(store.records[0]!.delivery.error).not.toContain('169.254');
    expect(rx.deliveries).toHaveLength(0);
  });

  it('a failed connection to a resolved name does not tell the tenant the address (issue 14)', async () => {
    // A port nothing listens on any more.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const job = makeJob({ webhookUrl: `http://hooks.example.test:${port}/hook` });
    const store = new FakeOutbox().add(job);
    dispatcher(store, { policy: policy({ allowLoopback: true }), resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
    await until(() => store.records.length === 1);
    const error = store.records[0]!.delivery.error;
    expect(error).toMatch(/ECONNREFUSED/);
    expect(error).not.toContain('127.0.0.1');
  });

  it('connects to the address it checked (a resolved name, allowed)', async () => {
    const rx = await receiver();
    const job = makeJob({ webhookUrl: `http://hooks.example.test:${rx.port}/hook` });
    const store = new FakeOutbox().add(job);
    dispatcher(store, { resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
    await until(() => store.records.length === 1);
    expect(store.records[0]!.next.state).toBe('delivered');
    expect(rx.deliveries[0]!.headers.host).toBe(`hooks.example.test:${rx.port}`);
  });

  it('resolves `localhost` through the system resolver when loopback is allowed, and refuses it otherwise', async () => {
    const rx = await receiver();
    const ok = makeJob({ webhookUrl: `http://localhost:${rx.port}/hook` });
    const store = new FakeOutbox().add(ok);
    dispatcher(store);
    await until(() => store.records.length === 1);
    expect(store.records[0]!.next.state).toBe('delivered');

    // listed on the allow-list but loopback not allowed: refused, nothing sent
    const refused = makeJob({ webhookUrl: `http://localhost:${rx.port}/hook` });
    const store2 = new FakeOutbox().add(refused);
    dispatcher(store2, { policy: policy({ allowLoopback: false, hosts: ['localhost'] }) });
    await until(() => store2.records.length === 1);
    expect(store2.records[0]!.delivery.error).toMatch(/allowLoopback/);
    expect(rx.deliveries).toHaveLength(1);
  });
});
