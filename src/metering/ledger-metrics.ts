/**
 * The ledger writer's metric, registered on the gateway's registry: usage events spooled on local
 * disk and not yet confirmed by the database (read from the writer when scraped).
 */
import { Gauge, type Registry } from 'prom-client';

export class LedgerMetrics {
  /** `pending` is the ledger writer's count of unconfirmed spooled events. */
  constructor(registry: Registry, sources: { pending: () => number }) {
    const { pending } = sources;
    new Gauge({
      name: 'tollgate_ledger_spool_events',
      help: 'Usage events on local disk that the ledger has not confirmed yet (grows while the database is unreachable, drains after)',
      registers: [registry],
      collect() {
        this.set(pending());
      },
    });
  }
}
