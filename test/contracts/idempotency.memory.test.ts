import { MemoryIdempotencyStore } from '../../src/storage/memory/idempotency.js';
import { runIdempotencyContract } from './idempotency.contract.js';

runIdempotencyContract('memory', async () => new MemoryIdempotencyStore());
