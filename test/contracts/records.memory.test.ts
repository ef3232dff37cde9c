import { MemoryRecords } from '../../src/storage/memory/records.js';
import { runRecordsContract } from './records.contract.js';

runRecordsContract('memory', async () => new MemoryRecords());
