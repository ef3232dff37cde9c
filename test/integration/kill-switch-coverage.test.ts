/**
 * Issue 14, item 8: a kill switch refuses every /v1 request of the key (or tenant) it names,
 * feedback included (a switched-off key removed and demoted its tenant's cache entries and fed
 * experiment results). The list of /v1 routes is read from the running app, so a route added
 * later without the check fails here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimServer } from '../../src/providers/simulated/server.js';
import { type TestGateway, auth, hello, httpSimConfig, startGateway, startSim } from '../helpers/gateway.js';

/** Every (method, path) Fastify serves, from printRoutes' tree (HEAD left out: it mirrors GET). */
function routesOf(tree: string): Array<{ method: string; path: string }> {
  const out: Array<{ method: string; path: string }> = [];
  const stack: Array<{ depth: number; path: string }> = [];
  for (const line of tree.split('\n')) {
    const m = /^([│ ├└─]*)(\S.*?) \(([A-Z, ]+)\)$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length;
    while (stack.length && stack[stack.length - 1]!.depth >= depth) stack.pop();
    const path = (stack[stack.length - 1]?.path ?? '') + m[2]!;
    stack.push({ depth, path });
    for (const method of m[3]!.split(', ')) if (method !== 'HEAD') out.push({ method, path });
  }
  return out;
}

/** A request for each /v1 route, valid but for the switched-off key. */
const BODIES: Record<string, unknown> = {
  'POST /v1/chat/completions': hello('sim-small'),
  'POST /v1/embeddings': { model: 'sim-embed', input: 'hi' },
  'POST /v1/jobs': { body: hello('sim-small') },
  'POST /v1/feedback': { request_id: 'req_1', rating: 'bad' },
  'POST /v1/batches': { input_file_id: 'file_1', endpoint: '/v1/chat/completions', completion_window: '24h' },
  'POST /v1/batches/:id/cancel': {},
};

describe('a kill switch refuses every /v1 request', () => {
  let sim: SimServer;
  let gw: TestGateway;
  let key: string;
  beforeAll(async () => {
    sim = await startSim();
    gw = await startGateway(
      httpSimConfig({ up: sim }, { 'sim-small': { deployments: [{ provider: 'up' }] }, 'sim-embed': { type: 'embedding', deployments: [{ provider: 'up' }] } }),
    );
    const admin = { ...auth(gw.adminKey), 'content-type': 'application/json' };
    const created = (await (await fetch(`${gw.url}/admin/v1/keys`, { method: 'POST', headers: admin, body: JSON.stringify({ tenant_id: gw.tenantId }) })).json()) as { id: string; key: string };
    key = created.key;
    const res = await fetch(`${gw.url}/admin/v1/kill-switches`, { method: 'POST', headers: admin, body: JSON.stringify({ scope: 'key', target: created.id, reason: 'compromised' }) });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await gw?.close();
    await sim?.close();
  });

  it('every route under /v1, feedback included, answers 403 access_disabled', async () => {
    const routes = routesOf(gw.gateway.app.printRoutes({ commonPrefix: false })).filter((r) => r.path.startsWith('/v1/'));
    expect(routes.length).toBeGreaterThan(10);
    const served: string[] = [];
    for (const r of routes) {
      const path = r.path.replace(/:[a-z_]+/g, 'x_1').replace(/\/?\*$/, '/sim-small');
      const body = BODIES[`${r.method} ${r.path}`];
      const multipart = r.method === 'POST' && r.path === '/v1/files';
      const form = new FormData();
      form.set('purpose', 'batch');
      form.set('file', new Blob(['{}\n']), 'in.jsonl');
      const res = await fetch(`${gw.url}${path}`, {
        method: r.method,
        headers: { ...auth(key), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(multipart ? { body: form } : body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const json = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
      if (res.status !== 403 || json.error?.code !== 'access_disabled') served.push(`${r.method} ${r.path} -> ${res.status} ${json.error?.code ?? ''}`);
    }
    expect(served).toEqual([]);
  });
});
