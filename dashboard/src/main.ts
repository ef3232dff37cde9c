/**
 * The dashboard page: sign in with the admin key, then follow the snapshot stream (every ~2 s)
 * into the charts and cards, and poll the summary (top spenders, budgets) every 15 s.
 */
import 'uplot/dist/uPlot.min.css';
import '../styles.css';
import { ApiError, forgetKey, getJson, readEventStream, storeKey, storedKey } from './api.js';
import { LiveChart, type SeriesSpec } from './charts.js';
import { count, ms, pct, usd } from './format.js';
import { RequestLog } from './request-log.js';
import { byId, renderCacheVerification, renderSignals, renderSummary } from './tables.js';
import type { CacheStats, DashboardSnapshot, DashboardSummary, Num } from './types.js';

let key = '';
let session: AbortController | undefined;

const perSec = (v: number) => `${count(v)}/s`;
const charts = {
  requests: new LiveChart(byId('chart-requests'), { format: perSec }),
  latency: new LiveChart(byId('chart-latency'), { format: ms }),
  ttft: new LiveChart(byId('chart-ttft'), { format: ms }),
  cost: new LiveChart(byId('chart-cost'), { format: (v) => usd(v, 4) }),
  costPerRequest: new LiveChart(byId('chart-cost-per-request'), { format: (v) => usd(v, 6) }),
  cache: new LiveChart(byId('chart-cache'), { format: pct }),
  savings: new LiveChart(byId('chart-savings'), { format: (v) => usd(v, 4) }),
  tiers: new LiveChart(byId('chart-tiers'), { format: perSec }),
  models: new LiveChart(byId('chart-models'), { format: perSec }),
  errors: new LiveChart(byId('chart-errors'), { format: perSec }),
  queue: new LiveChart(byId('chart-queue'), { format: count }),
};
const requestLog = new RequestLog(() => key);

/** Queue depth is a current value in each snapshot: its history is kept here. */
const queueHistory: { t: number[]; queued: number[] } = { t: [], queued: [] };

function setText(id: string, text: string): void {
  byId(id).textContent = text;
}

function setConnection(state: 'live' | 'connecting' | 'offline', text: string): void {
  const node = byId('connection');
  node.dataset['state'] = state;
  node.textContent = text;
}

function render(s: DashboardSnapshot): void {
  const x = s.series.t;
  const c = s.current;
  setText('kpi-rps', perSec(c.requestsPerSec));
  setText('kpi-p95', ms(c.p95Ms));
  setText('kpi-errors', pct(c.errorRate));
  setText('kpi-cost-hour', usd(s.hour.costUsd, 4));
  setText('kpi-cost-request', usd(s.hour.costPerRequestUsd, 6));
  setText('kpi-cache', pct(s.hour.cacheHitRate));
  setText('kpi-saved', usd(s.hour.savedUsd, 4));
  setText('nodes', `${c.nodes} process${c.nodes === 1 ? '' : 'es'}`);

  charts.requests.update(x, [{ label: 'requests', values: s.series.requestsPerSec }]);
  const latency: SeriesSpec[] = [];
  for (const [tier, q] of Object.entries(s.series.latency).sort(([a], [b]) => a.localeCompare(b))) {
    latency.push(
      { label: `${tier} p50`, values: q.p50, points: true },
      { label: `${tier} p95`, values: q.p95, dashed: true, points: true },
      { label: `${tier} p99`, values: q.p99, dashed: true, points: true },
    );
  }
  charts.latency.update(x, latency);
  charts.ttft.update(x, [
    { label: 'p50', values: s.series.ttftP50Ms, points: true },
    { label: 'p95', values: s.series.ttftP95Ms, dashed: true, points: true },
  ]);
  charts.cost.update(x, [{ label: 'cost per hour', values: s.series.costPerHourUsd }]);
  charts.costPerRequest.update(x, [{ label: 'cost per request', values: s.series.costPerRequestUsd, points: true }]);
  charts.cache.update(x, [{ label: 'hit rate', values: s.series.cacheHitRate, points: true }]);
  charts.savings.update(x, [{ label: 'saved per hour', values: s.series.savedUsdPerHour }]);
  const mix = (m: Record<string, number[]>): SeriesSpec[] => Object.entries(m).map(([label, values]) => ({ label, values }));
  charts.tiers.update(x, mix(s.series.tierMix));
  charts.models.update(x, mix(s.series.modelMix));
  charts.errors.update(x, [
    { label: 'errors (5xx)', values: s.series.errorsPerSec },
    { label: 'refusals (402/429)', values: s.series.refusalsPerSec },
    { label: 'other failures', values: s.series.failuresPerSec },
    { label: 'fallbacks', values: s.series.fallbacksPerSec, dashed: true },
  ]);

  if (s.queue) {
    const queued = s.queue.reduce((a, p) => a + p.queued, 0);
    const since = s.at / 1000 - s.window_minutes * 60;
    queueHistory.t.push(s.at / 1000);
    queueHistory.queued.push(queued);
    while (queueHistory.t.length > 0 && queueHistory.t[0]! < since) {
      queueHistory.t.shift();
      queueHistory.queued.shift();
    }
    setText('kpi-queue', count(queued));
    charts.queue.update(queueHistory.t, [{ label: 'queued jobs', values: queueHistory.queued as Num[], points: true }], [since, s.at / 1000]);
  } else setText('kpi-queue', '–');

  renderSignals('drift', s.signals?.drift);
  renderSignals('alerts', s.signals?.alerts);
  renderSignals('abuse', s.signals?.abuse);
}

async function follow(signal: AbortSignal): Promise<void> {
  const minutes = byId<HTMLSelectElement>('window').value;
  while (!signal.aborted) {
    setConnection('connecting', 'Connecting…');
    try {
      await readEventStream(key, `/admin/v1/dashboard/stream?minutes=${minutes}`, signal, (event, data) => {
        if (event !== 'snapshot') return;
        setConnection('live', 'Live');
        render(data as DashboardSnapshot);
      });
      if (signal.aborted) return;
      setConnection('offline', 'Disconnected: retrying…');
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.unauthorized) {
        signOut(`Your admin key was refused: ${err.message}`);
        return;
      }
      setConnection('offline', `Disconnected (${(err as Error).message}): retrying…`);
    }
    await new Promise((r) => setTimeout(r, 2_000));
  }
}

async function pollSummary(signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    try {
      renderSummary(await getJson<DashboardSummary>(key, '/admin/v1/dashboard/summary', signal));
      setText('summary-status', `Last 24 hours, updated ${new Date().toLocaleTimeString()}.`);
      renderCacheVerification((await getJson<CacheStats>(key, '/admin/v1/cache', signal)).verification);
    } catch (err) {
      if (signal.aborted) return;
      setText('summary-status', `Could not load the summary: ${(err as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, 15_000));
  }
}

function start(): void {
  session?.abort();
  session = new AbortController();
  byId('signin').hidden = true;
  byId('dashboard').hidden = false;
  byId('signout').hidden = false;
  void follow(session.signal);
  void pollSummary(session.signal);
  void requestLog.load(false);
}

function signOut(message = ''): void {
  session?.abort();
  session = undefined;
  key = '';
  forgetKey();
  byId('dashboard').hidden = true;
  byId('signout').hidden = true;
  byId('signin').hidden = false;
  setText('signin-error', message);
  setConnection('offline', 'Signed out');
}

/** Checks the key with one admin call before keeping it. */
async function signIn(candidate: string): Promise<void> {
  const error = byId('signin-error');
  error.textContent = '';
  try {
    await getJson<DashboardSummary>(candidate, '/admin/v1/dashboard/summary');
  } catch (err) {
    forgetKey();
    error.textContent =
      err instanceof ApiError && err.unauthorized ? `That key was refused: ${err.message}` : `Could not reach the gateway: ${(err as Error).message}`;
    return;
  }
  key = candidate;
  storeKey(candidate);
  byId<HTMLInputElement>('admin-key').value = '';
  start();
}

byId<HTMLFormElement>('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const value = byId<HTMLInputElement>('admin-key').value.trim();
  if (!value) {
    setText('signin-error', 'Enter an admin key.');
    return;
  }
  void signIn(value);
});
byId('signout').addEventListener('click', () => signOut());
byId('window').addEventListener('change', () => {
  queueHistory.t.length = 0;
  queueHistory.queued.length = 0;
  if (key) start();
});

const remembered = storedKey();
if (remembered) void signIn(remembered);
else setConnection('offline', 'Signed out');
