/**
 * Storage interfaces of the core stores. Each is small, async and free of driver types, so the
 * embedded adapters (memory, SQLite) and the distributed ones (Redis, PostgreSQL) are
 * interchangeable. A contract suite per interface (test/contracts/*.contract.ts) runs against
 * every adapter: a new backend is correct when it passes it.
 *
 * Part of the contract: the methods, their errors (`RecordNotFound`, `RecordConflict`) and the
 * shapes. Private to each adapter: schema, SQL, connection handling, migrations. The interfaces
 * live by area in the *-types.ts files beside this one, re-exported here; this module holds the
 * values they share.
 */
export type * from './counters-types.js';
export type * from './idempotency-types.js';
export type * from './ledger-types.js';
export type * from './records-types.js';
export type * from './request-log-types.js';

export class RecordNotFound extends Error {
  constructor(
    readonly entity: string,
    readonly id: string,
  ) {
    super(`${entity} '${id}' not found`);
    this.name = 'RecordNotFound';
  }
}

export class RecordConflict extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordConflict';
  }
}

/** How long a request in flight holds its key when nobody completes or releases it (its process died). */
export const DEFAULT_IDEMPOTENCY_LEASE_MS = 10 * 60_000;
