/**
 * The shadow budget (src/routing/shadow.ts): each tenant's shadow spend per UTC day, on a budget
 * counter of its own (`shadow:<tenant>:<YYYY-MM-DD>`) capped by `dailyBudgetUsd`. A missing
 * counter is seeded at 0 (shadow spend is not separable in `Ledger.spent`).
 */
import type { Counters } from '../storage/types.js';

const PICO_PER_USD = 1e12;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface ShadowBudgetItem {
  key: string;
  limit: number;
  amount: number;
  ttlMs: number;
}

/** The budget item reserving `amount` pico-USD on the tenant's counter for the day of `now` (kept an hour past the day). */
export function shadowBudgetItem(tenantId: string, dailyBudgetUsd: number, amount: number, now: number): ShadowBudgetItem {
  const dayStart = Math.floor(now / DAY) * DAY;
  const tag = new Date(dayStart).toISOString().slice(0, 10);
  return {
    key: `shadow:${tenantId}:${tag}`,
    limit: Math.round(dailyBudgetUsd * PICO_PER_USD),
    amount,
    ttlMs: dayStart + DAY - now + HOUR,
  };
}

/** Reserves on the tenant's shadow budget; a missing counter starts at 0. */
export async function reserveShadowBudget(counters: Counters, item: ShadowBudgetItem): Promise<boolean> {
  for (let round = 0; round < 3; round++) {
    const result = await counters.reserve([item]);
    if (result.ok) return true;
    if (result.missing.length === 0) return false;
    await counters.seedBudget(item.key, 0, item.ttlMs);
  }
  return false;
}
