/**
 * What the SQLite and PostgreSQL migration runners (src/storage/{sqlite,postgres}/database.ts)
 * check and say alike: the migrations' order, a schema newer than this Tollgate, a failed step.
 */

interface Step {
  version: number;
  name: string;
}

/** Refuses migrations whose versions are not strictly increasing positive integers. */
export function checkMigrationOrder(migrations: readonly Step[]): void {
  let previous = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= previous) {
      throw new Error(`migrations must have strictly increasing positive integer versions (at '${m.name}')`);
    }
    previous = m.version;
  }
}

/** Refuses a database migrated by a newer Tollgate (its latest version beyond the last one known). */
export function refuseNewerSchema(latestApplied: number | null | undefined, migrations: readonly Step[]): void {
  const latestKnown = migrations.at(-1)?.version ?? 0;
  if (latestApplied != null && latestApplied > latestKnown) {
    throw new Error(`database schema is at version ${latestApplied}, newer than this Tollgate knows (${latestKnown}); upgrade Tollgate`);
  }
}

/** The error of a migration that failed, naming it. */
export function migrationFailed(m: Step, err: unknown): Error {
  return new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
}
