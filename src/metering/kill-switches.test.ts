import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../errors.js';
import { MemoryRecords } from '../storage/memory/records.js';
import type { KillSwitch } from '../storage/types.js';
import { KillSwitches } from './kill-switches.js';

const models: Record<string, string> = { 'sim-small': 'sim-small', small: 'sim-small', 'sim-large': 'sim-large' };

function service(records: MemoryRecords, refreshMs = 100) {
  return new KillSwitches({ records, refreshMs, resolveModel: (n) => models[n], providers: ['up', 'backup'] });
}

function thrown(fn: () => void): GatewayError | undefined {
  try {
    fn();
  } catch (err) {
    return err as GatewayError;
  }
  return undefined;
}

describe('KillSwitches', () => {
  let records: MemoryRecords;
  let ks: KillSwitches;
  const caller = { tenantId: 'ten_a', keyId: 'key_a' };

  beforeEach(async () => {
    records = new MemoryRecords();
    await records.createTenant({ id: 'ten_a', name: 'A' });
    await records.createTenant({ id: 'ten_b', name: 'B' });
    ks = service(records);
  });
  afterEach(() => {
    ks.stop();
    vi.useRealTimers();
  });

  it('lets everything through when no switch exists', async () => {
    await ks.start();
    expect(() => ks.checkAccess(caller)).not.toThrow();
    expect(() => ks.checkModel('sim-small')).not.toThrow();
    expect(ks.disabledProvider('up')).toBeUndefined();
  });

  it('refuses by tenant, key and globally with 403 access_disabled naming the switch and its reason', async () => {
    await ks.start();
    const t = await ks.create({ scope: 'tenant', target: 'ten_a', reason: 'runaway agent' });
    const err = thrown(() => ks.checkAccess(caller));
    expect(err).toMatchObject({ status: 403, code: 'access_disabled', type: 'permission_error' });
    expect(err?.message).toBe(`Requests of tenant 'ten_a' are disabled by a kill switch (${t.id}): runaway agent`);
    expect(() => ks.checkAccess({ tenantId: 'ten_b', keyId: 'key_b' })).not.toThrow();

    await ks.delete(t.id);
    expect(() => ks.checkAccess(caller)).not.toThrow();

    const keyRecord = await records.createKey({
      tenantId: 'ten_b', name: 'k', kind: 'api', prefix: 'tg-x', hash: 'f'.repeat(64), tier: 'standard', allowedModels: null, userId: null, expiresAt: null,
    });
    await ks.create({ scope: 'key', target: keyRecord.id, reason: 'leaked' });
    expect(thrown(() => ks.checkAccess({ tenantId: 'ten_b', keyId: keyRecord.id }))?.message).toMatch(/This API key \(key_\w+\) is disabled .*: leaked/);

    await ks.create({ scope: 'global', reason: 'incident 7' });
    expect(thrown(() => ks.checkAccess(caller))?.message).toMatch(/^All requests are disabled by a global kill switch \(ks_\w+\): incident 7$/);
  });

  it('refuses a model (by its public name, aliases included) with 503 model_disabled, and reports disabled providers', async () => {
    await ks.start();
    const m = await ks.create({ scope: 'model', target: 'small', reason: 'bad answers' });
    expect(m.target).toBe('sim-small'); // stored as the public name
    expect(thrown(() => ks.checkModel('sim-small'))).toMatchObject({ status: 503, code: 'model_disabled', param: 'model' });
    expect(() => ks.checkModel('sim-large')).not.toThrow();
    const p = await ks.create({ scope: 'provider', target: 'up', reason: 'outage' });
    expect(ks.disabledProvider('up')).toEqual(p);
    expect(ks.disabledProvider('backup')).toBeUndefined();
  });

  it('validates scope, target and reason, naming the field', async () => {
    const bad = (input: Parameters<KillSwitches['create']>[0]) =>
      ks.create(input).then(
        () => undefined,
        (e: unknown) => e as GatewayError,
      );
    expect(await bad({ scope: 'team', target: 'x', reason: 'r' })).toMatchObject({ status: 400, param: 'scope' });
    expect(await bad({ scope: 'tenant', reason: 'r' })).toMatchObject({ status: 400, code: 'missing_field', param: 'target' });
    expect(await bad({ scope: 'tenant', target: 'ten_nope', reason: 'r' })).toMatchObject({ param: 'target', message: "Unknown tenant 'ten_nope'." });
    expect(await bad({ scope: 'key', target: 'key_nope', reason: 'r' })).toMatchObject({ param: 'target' });
    expect(await bad({ scope: 'model', target: 'gpt-9', reason: 'r' })).toMatchObject({ param: 'target' });
    expect((await bad({ scope: 'provider', target: 'azure', reason: 'r' }))?.message).toMatch(/configured: up, backup/);
    expect(await bad({ scope: 'global', target: 'x', reason: 'r' })).toMatchObject({ param: 'target' });
    expect(await bad({ scope: 'global', reason: '  ' })).toMatchObject({ code: 'missing_field', param: 'reason' });
    expect(await records.listKillSwitches()).toEqual([]);
  });

  it('picks up switches another process wrote to the store on its next refresh', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    await ks.start();
    await records.createKillSwitch({ scope: 'tenant', target: 'ten_a', reason: 'from elsewhere' });
    expect(() => ks.checkAccess(caller)).not.toThrow(); // not yet: the snapshot is in memory
    await vi.advanceTimersByTimeAsync(100);
    expect(() => ks.checkAccess(caller)).toThrow(/from elsewhere/);
    const [sw] = await records.listKillSwitches();
    await records.deleteKillSwitch(sw!.id);
    await vi.advanceTimersByTimeAsync(100);
    expect(() => ks.checkAccess(caller)).not.toThrow();
  });

  it('keeps the last snapshot while the store fails, and never lets an older read replace a newer one', async () => {
    await ks.start();
    await ks.create({ scope: 'global', reason: 'stop' });
    const list = vi.spyOn(records, 'listKillSwitches').mockRejectedValueOnce(new Error('store down'));
    await expect(ks.refresh()).rejects.toThrow('store down');
    expect(() => ks.checkAccess(caller)).toThrow(/stop/);

    // A slow read that started before a change must not undo it when it finally answers.
    let release!: (v: KillSwitch[]) => void;
    list.mockImplementationOnce(() => new Promise((r) => (release = r)));
    const slow = ks.refresh(); // would see "no switches"
    const [sw] = await records.listKillSwitches();
    await ks.delete(sw!.id); // newer read: no switches either
    await ks.create({ scope: 'tenant', target: 'ten_a', reason: 'newer' });
    release([]);
    await slow;
    expect(() => ks.checkAccess(caller)).toThrow(/newer/);
  });

  it('stops reloading once stopped', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    await ks.start();
    ks.stop();
    const list = vi.spyOn(records, 'listKillSwitches');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(list).not.toHaveBeenCalled();
  });
});
