/**
 * Shadow traffic: is the user's latency unchanged with shadowing on (within noise, measured)?
 *
 * One `tollgate sim` with two chat models (m-small, m-candidate) answering after a fixed 20 ms,
 * and two gateways in front of it, both with the cache off and a route `auto` (tiers
 * {small: [m-small]}, classifier none):
 *   shadow-off   no shadow
 *   shadow-on    shadow: {model: m-candidate, sampleRate: 1, dailyBudgetUsd: 1000}: every answered
 *                request is sent again to m-candidate in the background
 * measured in turns at a fixed, evenly paced rate (200 req/s), `model: auto`. Verdict: |added p50|
 * of shadow-on over shadow-off within the run's own noise, max(0.2 ms, IQR of the per-round p50
 * differences). Checks: simulator calls per request (≈1 off, ≈2 on, by model) and, after the
 * runs, `GET /admin/v1/shadow/auto` of shadow-on (pairs recorded, agreement rate).
 *
 * Environment: BENCH_SHADOW_RATE (200), BENCH_SHADOW_MODES (json; `json,stream` adds SSE),
 * BENCH_SHADOW_SIM_LATENCY_MS (20).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryMB } from '../lib/process.js';
import { modesEnv, positiveEnv, reportFields, scenarioResult, type BenchSettings, type Scenario, type ScenarioReport } from '../lib/scenario.js';
import { fmt } from '../lib/table.js';
import { chatRequest, checkRequest, launchGateway, MAX_TOKENS, PROMPT, startFixedLatencySimulator, tollgateCli, type Gateway, type HttpTarget, type Mode } from '../lib/tollgate.js';
import { pacedTurns, pacedWarmUp, rounds, settleTargets } from '../lib/turns.js';
import {
  buildReport,
  CANDIDATE_MODEL,
  PRICES,
  PRIMARY_MODEL,
  ROUTE,
  type RunRecord,
  type ShadowChecks,
  type ShadowReportEntry,
  type ShadowSettings,
  type TargetInfo,
  type TargetName,
} from './shadow-report.js';

function shadowSettings(): ShadowSettings {
  return {
    rate: positiveEnv('BENCH_SHADOW_RATE', 200),
    rateConnections: 50,
    leadInS: 0.5,
    modes: modesEnv('BENCH_SHADOW_MODES', 'json'),
    simLatencyMs: positiveEnv('BENCH_SHADOW_SIM_LATENCY_MS', 20),
    shadow: { model: CANDIDATE_MODEL, sampleRate: 1, dailyBudgetUsd: 1_000 },
  };
}

interface ShadowGateway extends Gateway {
  name: TargetName;
  adminKey: string;
  info: TargetInfo;
}

const TARGET_DEFS: { name: TargetName; shadow: boolean; description: string }[] = [
  { name: 'shadow-off', shadow: false, description: `route ${ROUTE} -> ${PRIMARY_MODEL}, no shadow` },
  { name: 'shadow-on', shadow: true, description: `route ${ROUTE} -> ${PRIMARY_MODEL}, every request mirrored to ${CANDIDATE_MODEL}` },
];

async function startGateways(s: BenchSettings, sh: ShadowSettings, tmp: string, sim: HttpTarget, started: ShadowGateway[]): Promise<void> {
  for (const def of TARGET_DEFS) {
    const route: Record<string, unknown> = { tiers: { small: [PRIMARY_MODEL] }, classifier: 'none' };
    if (def.shadow) route.shadow = { ...sh.shadow };
    const models = Object.fromEntries(([PRIMARY_MODEL, CANDIDATE_MODEL] as const).map((m) => [m, { type: 'chat', deployments: [{ provider: 'upstream' }], price: { ...PRICES[m] } }]));
    const extra = { models, routes: { [ROUTE]: route }, cache: { enabled: false } };
    const g = await launchGateway({ name: def.name, root: s.root, dir: join(tmp, def.name), simOrigin: sim.origin, log: s.log, extra, keys: 'api+admin' });
    const info: TargetInfo = { name: def.name, description: def.description, tierHeader: null, modelHeader: null, idleRss: g.idleRss, requestsSent: 0 };
    started.push({ ...g, name: def.name, adminKey: g.adminKey ?? '', info });
  }
}

function request(g: ShadowGateway, mode: Mode) {
  return chatRequest(g.origin, mode, g.apiKey, { model: ROUTE });
}

async function adminGet<T>(g: ShadowGateway, path: string): Promise<T> {
  const res = await fetch(`${g.origin}/admin/v1${path}`, { headers: { authorization: `Bearer ${g.adminKey}` }, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`GET /admin/v1${path} on ${g.name}: HTTP ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

type ShadowStatsJson = { stats: NonNullable<ShadowChecks['stats']> };

/** One request per mode: the route must pick tier small and m-small; and shadow-on must know its shadow route. */
async function preflight(gateways: ShadowGateway[], sh: ShadowSettings): Promise<void> {
  for (const g of gateways) {
    for (const mode of sh.modes) {
      const headers = await checkRequest(request(g, mode), g.proc, `${g.name} (${mode})`);
      g.info.requestsSent++;
      g.info.tierHeader = headers.get('x-tollgate-tier');
      g.info.modelHeader = headers.get('x-tollgate-model');
      if (g.info.modelHeader !== PRIMARY_MODEL) throw new Error(`${g.name} (${mode}) was served by ${g.info.modelHeader ?? '(no x-tollgate-model)'}, expected ${PRIMARY_MODEL} through route ${ROUTE}`);
    }
  }
  const on = gateways.find((g) => g.name === 'shadow-on');
  if (on) {
    const list = await adminGet<{ data: { route: string; model: string }[] }>(on, '/shadow');
    if (!list.data.some((d) => d.route === ROUTE && d.model === CANDIDATE_MODEL)) throw new Error(`shadow-on lists no shadow for route ${ROUTE}: ${JSON.stringify(list.data)}`);
  }
}

async function simByModel(origin: string): Promise<Record<string, number>> {
  const res = await fetch(`${origin}/_sim/stats`, { signal: AbortSignal.timeout(5_000) });
  return ((await res.json()) as { byModel: Record<string, number> }).byModel;
}

/** After the runs: shadow-on's counters (once nothing is in flight) and its report of route `auto`. */
async function inspectShadow(on: ShadowGateway | undefined, checks: ShadowChecks, log: (l: string) => void): Promise<void> {
  if (!on) return;
  try {
    const deadline = Date.now() + 10_000;
    let stats = (await adminGet<ShadowStatsJson>(on, '/shadow')).stats;
    while (stats.in_flight > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      stats = (await adminGet<ShadowStatsJson>(on, '/shadow')).stats;
    }
    checks.stats = stats;
    const report = await adminGet<{ config: { agreement_threshold: number }; data: ShadowReportEntry[] }>(on, `/shadow/${ROUTE}`);
    checks.agreementThreshold = report.config.agreement_threshold;
    const entry = report.data.find((d) => d.shadow_model === CANDIDATE_MODEL);
    if (entry) checks.report = entry;
    else checks.errors.push(`GET /admin/v1/shadow/${ROUTE} has no entry for ${CANDIDATE_MODEL}: ${JSON.stringify(report.data)}`);
    log(
      `shadow-on: ${stats.mirrored} mirrored, ${stats.skipped_busy} skipped busy, ${stats.failed} failed; report: ${entry ? `${entry.pairs} pairs, agreement ${entry.agreement_rate ?? 'n/a'}` : 'n/a'}`,
    );
  } catch (err) {
    const msg = `inspecting shadow-on's shadow report failed: ${err instanceof Error ? err.message : String(err)}`;
    checks.errors.push(msg);
    log(msg);
  }
}

export const shadowScenario: Scenario = {
  name: 'shadow',
  description: "Shadow traffic: the user's latency with every request mirrored to a candidate model vs without, at 200 req/s",
  async run(s: BenchSettings): Promise<ScenarioReport> {
    const sh = shadowSettings();
    const tmp = mkdtempSync(join(tmpdir(), 'tollgate-bench-shadow-'));
    const rate = rounds(s.seconds, 1);
    const runs: RunRecord[] = [];
    const gateways: ShadowGateway[] = [];
    const checks: ShadowChecks = { errors: [] };
    let sim: HttpTarget | undefined;
    try {
      s.log(`starting simulator (${PRIMARY_MODEL}, ${CANDIDATE_MODEL}: ${sh.simLatencyMs} ms, fixed)`);
      sim = await startFixedLatencySimulator({ cli: tollgateCli(s.root), dir: tmp, latencyMs: sh.simLatencyMs, models: [PRIMARY_MODEL, CANDIDATE_MODEL] });
      const simTarget = sim;
      await startGateways(s, sh, tmp, simTarget, gateways);
      await preflight(gateways, sh);

      // Warm-up at the measured rate (a closed loop at 50 connections would overflow the 16
      // shadow calls allowed in flight and count skips that the measured runs never cause).
      for (const g of gateways) {
        const requests = sh.modes.map((mode) => request(g, mode));
        g.info.requestsSent += await pacedWarmUp({ name: g.name, requests, rate: sh.rate, connections: sh.rateConnections, seconds: s.warmupSeconds, log: s.log });
      }
      await settleTargets([simTarget.proc.pid, ...gateways.map((g) => g.proc.pid)], s.log);

      for (const mode of sh.modes) {
        s.log(`${mode}: fixed rate ${sh.rate} req/s, ${rate.count} rounds of ${fmt(rate.sliceS)} s per target`);
        const byModel = gateways.map((): Record<string, number> => ({}));
        const results = await pacedTurns(
          gateways.map((g) => ({ name: g.name, pid: g.proc.pid, request: request(g, mode) })),
          {
            label: mode,
            log: s.log,
            sim: { origin: simTarget.origin, pid: simTarget.proc.pid },
            rate: sh.rate,
            connections: sh.rateConnections,
            rounds: rate,
            leadInS: sh.leadInS,
            // A turn waits for the gateway and the simulator to go idle: the slice's shadow calls end inside it.
            aroundTurn: async (i, turn) => {
              const before = await simByModel(simTarget.origin);
              await turn();
              const after = await simByModel(simTarget.origin);
              const counts = byModel[i] as Record<string, number>;
              for (const [model, n] of Object.entries(after)) counts[model] = (counts[model] ?? 0) + n - (before[model] ?? 0);
            },
          },
        );
        gateways.forEach((g, i) => (g.info.requestsSent += results[i]!.load.sent));
        runs.push(...results.map((r, i): RunRecord => ({ mode, target: gateways[i]!.name, ...r, simByModel: byModel[i] as Record<string, number> })));
      }
      for (const g of gateways) g.info.rssAfter = memoryMB(g.proc.pid);
      await inspectShadow(
        gateways.find((g) => g.name === 'shadow-on'),
        checks,
        s.log,
      );
    } finally {
      for (const g of [...gateways].reverse()) await g.proc.stop(10_000);
      await sim?.proc.stop();
      rmSync(tmp, { recursive: true, force: true });
    }

    const targets = gateways.map((g) => g.info);
    const report = buildReport({ runs, targets, checks, shadow: sh, settings: s, rate, maxTokens: MAX_TOKENS });
    return scenarioResult('shadow', s, report, {
      settings: {
        ...sh,
        seconds: s.seconds,
        warmupSeconds: s.warmupSeconds,
        rounds: rate,
        maxTokens: MAX_TOKENS,
        prompt: PROMPT,
        route: ROUTE,
        models: { primary: PRIMARY_MODEL, candidate: CANDIDATE_MODEL, prices: PRICES },
      },
      targets,
      runs,
      ...reportFields(report, { checks }),
    });
  },
};
