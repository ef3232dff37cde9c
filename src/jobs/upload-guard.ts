/**
 * What an upload (POST /v1/files) must pass before its body is read, once its key is known:
 * the per-process caps on uploads in progress (per key: jobs.batch.maxConcurrentUploadsPerKey; in
 * total: jobs.batch.maxConcurrentUploads), the key's request rate limits (an upload counts as one
 * request against its RPM, like any other), and the tenant's file quotas (quotas.files,
 * quotas.fileBytes, against the declared Content-Length when there is one). A refusal is a 429
 * with Retry-After (caps: `too_many_uploads`; rate limit: `rate_limit_exceeded`) or a 402
 * `storage_quota_exceeded`.
 *
 * The caps are per process: each process bounds its own disk, memory and sockets; the rate limit
 * and the quota are the tenant's, across processes.
 */
import type { AuthInfo } from '../auth/authenticator.js';
import { GatewayError } from '../errors.js';
import type { StorageQuotas } from '../metering/storage-quotas.js';

export interface UploadStats {
  keyId: string;
  tenantId: string;
  /** Bytes of the file received (0 when it was refused or cut short before any). */
  bytes: number;
  /** The most bytes of the body held in memory at once while it was read. */
  maxBufferedBytes: number;
}

/** Told when an upload takes a slot and when it gives it back (tests, metrics). */
export interface UploadObserver {
  started?(keyId: string): void;
  ended?(stats: UploadStats): void;
}

export interface UploadGuardOptions {
  maxConcurrent: number;
  maxConcurrentPerKey: number;
  /** Takes one request from the caller's request rate limits; throws 429 rate_limit_exceeded. */
  rateLimit?: (auth: AuthInfo) => Promise<void>;
  quotas?: Pick<StorageQuotas, 'checkFile'>;
  observer?: UploadObserver;
}

/** An upload's place among those in progress; `release` once it has ended (idempotent). */
export interface UploadSlot {
  /** Records how the upload went (reported to the observer on release). */
  report(stats: Pick<UploadStats, 'bytes' | 'maxBufferedBytes'>): void;
  release(): void;
}

/** Retry-After for a refused upload: uploads take seconds. */
const RETRY_AFTER_SECONDS = '5';

export class UploadGuard {
  private active = 0;
  private readonly perKey = new Map<string, number>();

  constructor(private readonly opts: UploadGuardOptions) {}

  /** Uploads in progress in this process. */
  get inProgress(): number {
    return this.active;
  }

  /**
   * Admits an upload of `declaredBytes` (the body's Content-Length, when given) for `auth`, or
   * throws the refusal. The caps are checked first (no I/O), then the rate limit and the quota.
   */
  async admit(auth: AuthInfo, declaredBytes: number | undefined): Promise<UploadSlot> {
    const mine = this.perKey.get(auth.keyId) ?? 0;
    if (mine >= this.opts.maxConcurrentPerKey) {
      throw tooMany(
        `This API key already has ${mine} upload${mine === 1 ? '' : 's'} in progress, the most allowed at once (jobs.batch.maxConcurrentUploadsPerKey: ${this.opts.maxConcurrentPerKey}); retry when one has finished.`,
      );
    }
    if (this.active >= this.opts.maxConcurrent) {
      throw tooMany(
        `The gateway is receiving ${this.active} uploads, the most it takes at once (jobs.batch.maxConcurrentUploads: ${this.opts.maxConcurrent}); retry shortly.`,
      );
    }
    // Taken before the awaits below, so uploads arriving meanwhile see it.
    this.active++;
    this.perKey.set(auth.keyId, mine + 1);
    let released = false;
    const giveBack = () => {
      released = true;
      this.active--;
      const n = (this.perKey.get(auth.keyId) ?? 1) - 1;
      if (n <= 0) this.perKey.delete(auth.keyId);
      else this.perKey.set(auth.keyId, n);
    };
    let stats: Pick<UploadStats, 'bytes' | 'maxBufferedBytes'> = { bytes: 0, maxBufferedBytes: 0 };
    const slot: UploadSlot = {
      report: (s) => {
        stats = s;
      },
      release: () => {
        if (released) return;
        giveBack();
        this.opts.observer?.ended?.({ keyId: auth.keyId, tenantId: auth.tenantId, ...stats });
      },
    };
    try {
      await this.opts.rateLimit?.(auth);
      await this.opts.quotas?.checkFile(auth.tenantId, declaredBytes ?? 0);
    } catch (err) {
      giveBack(); // never started: not reported
      throw err;
    }
    this.opts.observer?.started?.(auth.keyId);
    return slot;
  }

  /** The tenant's file quotas against the bytes received (a body without Content-Length was admitted blind). */
  async checkReceived(auth: AuthInfo, bytes: number): Promise<void> {
    await this.opts.quotas?.checkFile(auth.tenantId, bytes);
  }
}

function tooMany(message: string): GatewayError {
  return new GatewayError('too_many_uploads', message, { headers: { 'retry-after': RETRY_AFTER_SECONDS } });
}
