import { describe, expect, it } from 'vitest';
import { createLogger } from '../observability/logger.js';
import { LocalChangeBus } from '../storage/change-bus.js';
import { BudgetSeeding } from './budget-seeding.js';

function setup() {
  const settles: Array<{ key: string; amount: number; epoch: string | undefined }> = [];
  const bus = new LocalChangeBus();
  const seeding = new BudgetSeeding({
    bus,
    counters: { settle: async (key, _reserved, actual, _ttl, epoch) => (settles.push({ key, amount: actual, epoch }), actual) },
    writer: { unflushedSpent: () => 100 },
    node: 'me',
    log: createLogger('silent'),
  });
  seeding.start();
  return { seeding, settles, bus };
}

const budget = { key: 'budget:tenant:t:day:2026-12-08', filter: { tenantId: 't' }, from: 0, to: 86_400_000, ttlMs: 60_000 };

describe('BudgetSeeding', () => {
  it('adds this process spool share to a counter reseeded by another process, once, whether told over the bus or noticing the new epoch itself', async () => {
    const { seeding, settles, bus } = setup();
    seeding.noticed([budget], ['e1']); // first sight: nothing to add
    expect(settles).toEqual([]);
    // Redis restarted; another process reseeded; its announcement was missed (subscription down).
    seeding.noticed([budget], ['e2']);
    expect(settles).toEqual([{ key: budget.key, amount: 100, epoch: 'e2' }]);
    seeding.noticed([budget], ['e2']);
    await bus.publish({ kind: 'budget-seeded', node: 'other', ...budget, epoch: 'e2', readAt: Date.now() }); // late: already added
    expect(settles).toHaveLength(1);
    await bus.publish({ kind: 'budget-seeded', node: 'other', ...budget, epoch: 'e3', readAt: Date.now() });
    expect(settles).toHaveLength(2);
    seeding.noticed([budget], ['e3']); // told already
    expect(settles).toHaveLength(2);
  });

  it('adds nothing to a counter it seeded itself, and skips its own announcements and malformed ones', async () => {
    const { seeding, settles, bus } = setup();
    seeding.noticed([budget], ['e1']);
    seeding.announce({ ...budget, epoch: 'e2', readAt: Date.now() });
    seeding.noticed([budget], ['e2']);
    await bus.publish({ kind: 'budget-seeded', node: 'other', ...budget, epoch: 5 as unknown as string, readAt: Date.now() });
    expect(settles).toEqual([]);
  });
});
