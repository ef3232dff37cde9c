/**
 * Abuse and anomaly signals per API key and per end user (tenant + user id), per process:
 * - `token_spike`: the current minute's tokens pass an absolute floor, mean + k stddev of the
 *   subject's own past minutes, and a multiple of that mean;
 * - `repeated_prompt`: N near-identical prompts (SimHash within a few bits) within a window;
 * - `long_prompt`: a prompt over a token threshold.
 * Token spikes are judged for the key and the end user; repeats and long prompts for the end user
 * when the request names one, else the key.
 * A flag lasts until its condition has been quiet for `quietMinutes`. With `action: throttle`
 * (globally or for the kind) the subject is also refused by the abuse-guard stage for
 * `throttle.durationSeconds` (an in-memory check). Memory is bounded: at most `maxSubjects`
 * tracked subjects (least recently seen forgotten first) and as many flags. The token rate limits
 * (src/metering/rate-limiter.ts) remain the hard limit across processes.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AbuseAction, AbuseConfig } from '../config/signals-schema.js';
import { GatewayError } from '../errors.js';
import type { RequestObserver } from '../pipeline/stages/settle.js';
import { type Fingerprint, hammingDistance, simhash } from './prompt-features.js';

export type AbuseKind = 'token_spike' | 'repeated_prompt' | 'long_prompt';
export const ABUSE_KINDS: readonly AbuseKind[] = ['token_spike', 'repeated_prompt', 'long_prompt'];
export type AbuseSubject = 'key' | 'user';

/** A raised flag, as reported by `activeFlags()` and GET /admin/v1/abuse. */
export interface AbuseFlag {
  kind: AbuseKind;
  subject: AbuseSubject;
  /** The key id, or the end user's id. */
  id: string;
  tenant: string;
  /** Epoch ms: raised at; last seen (the condition recurred) at. */
  since: number;
  lastSeen: number;
  /** What was seen, for a person. */
  detail: string;
  /** Epoch ms until which the subject is throttled because of this flag (null: flag only). */
  throttledUntil: number | null;
}

/** What one request tells the detector. */
export interface AbuseObservation {
  tenant: string;
  keyId: string;
  /** The end user, when known. */
  user?: string | null | undefined;
  /** Tokens the request used (prompt + completion). */
  tokens: number;
  promptTokens: number;
  /** The end user's text (fingerprinted for repeats). */
  text: string;
}

export interface AbuseDetectorOptions {
  config: AbuseConfig;
  now?: () => number;
}

/** Near-duplicate prompts remembered per subject. */
const PRINTS_PER_SUBJECT = 16;

interface PrintState extends Fingerprint {
  count: number;
  first: number;
  last: number;
}

interface SubjectState {
  subject: AbuseSubject;
  id: string;
  tenant: string;
  /** The minute being counted, and its tokens so far. */
  minute: number;
  current: number;
  firstMinute: number;
  /** Tokens of past minutes, a ring indexed by minute % length. */
  history: Float32Array;
  /** Mean and stddev of the history, recomputed when the minute changes. */
  mean: number;
  std: number;
  prints: PrintState[];
}

interface Throttle {
  until: number;
  kind: AbuseKind;
  detail: string;
  minute: number;
  allowed: number;
}

const KIND_TEXT: Record<AbuseKind, string> = {
  token_spike: 'a token-rate spike',
  repeated_prompt: 'repeated near-identical prompts',
  long_prompt: 'very long prompts',
};

export class AbuseDetector {
  private readonly subjects = new Map<string, SubjectState>();
  private readonly flags = new Map<string, AbuseFlag>();
  private readonly throttles = new Map<string, Throttle>();
  private readonly now: () => number;
  private flagsRaised: Counter<'kind'> | undefined;
  private refused: Counter<'kind'> | undefined;

  constructor(private readonly opts: AbuseDetectorOptions) {
    this.now = opts.now ?? Date.now;
  }

  private get config(): AbuseConfig {
    return this.opts.config;
  }

  private actionOf(kind: AbuseKind): AbuseAction {
    const c = this.config;
    const override = kind === 'token_spike' ? c.tokenSpike.action : kind === 'repeated_prompt' ? c.repeatedPrompts.action : c.longPrompts.action;
    return override ?? c.action;
  }

  /** The settle observer: O(prompt length) (the fingerprint of its first characters), no I/O. */
  readonly observe: RequestObserver = (ctx) => {
    if (!this.config.enabled || !ctx.auth || ctx.error?.code === 'abuse_throttled') return;
    const u = ctx.usage;
    // As the rate limiter counts: a served cache hit uses no tokens.
    const tokens = u && !ctx.cache?.served ? u.prompt_tokens + u.completion_tokens + (ctx.discarded ? ctx.discarded.promptTokens + ctx.discarded.completionTokens : 0) : 0;
    const prompt = ctx.prompt;
    this.record({ tenant: ctx.auth.tenantId, keyId: ctx.auth.keyId, user: ctx.endUser, tokens, promptTokens: prompt.tokens, text: prompt.text });
  };

  /** Adds one request to its key's and end user's state, raising the flags it triggers. */
  record(o: AbuseObservation): void {
    if (!this.config.enabled) return;
    const now = this.now();
    const print = this.config.repeatedPrompts.enabled && o.text.length >= this.config.repeatedPrompts.minChars ? simhash(o.text) : undefined;
    // Token spikes are judged for both (each against its own history); a prompt's own signals
    // (repeats, length) for the most specific subject, so one end user's behaviour does not flag
    // (or throttle) the key that all of an application's users share.
    this.recordFor(this.subjectOf('key', o.keyId, o.tenant, now), o, o.user ? undefined : print, !o.user, now);
    if (o.user) this.recordFor(this.subjectOf('user', o.user, o.tenant, now), o, print, true, now);
  }

  private subjectOf(subject: AbuseSubject, id: string, tenant: string, now: number): SubjectState {
    const key = subjectKey(subject, id, tenant);
    let s = this.subjects.get(key);
    if (s) {
      this.subjects.delete(key); // re-inserted last: the map's order is least recently seen first
    } else {
      const minute = Math.floor(now / 60_000);
      s = { subject, id, tenant, minute, current: 0, firstMinute: minute, history: new Float32Array(this.config.tokenSpike.historyMinutes), mean: 0, std: 0, prints: [] };
      while (this.subjects.size >= this.config.maxSubjects) {
        const oldest = this.subjects.keys().next().value;
        if (oldest === undefined) break;
        this.subjects.delete(oldest);
      }
    }
    this.subjects.set(key, s);
    return s;
  }

  private recordFor(s: SubjectState, o: AbuseObservation, print: Fingerprint | undefined, promptSignals: boolean, now: number): void {
    const c = this.config;
    if (c.tokenSpike.enabled && o.tokens > 0) this.checkSpike(s, o.tokens, now);
    if (print) this.checkRepeat(s, print, now);
    if (promptSignals && c.longPrompts.enabled && o.promptTokens > c.longPrompts.maxPromptTokens) {
      this.raise(s, 'long_prompt', `a prompt of ${o.promptTokens} tokens (limit ${c.longPrompts.maxPromptTokens})`, now);
    }
  }

  private rollMinute(s: SubjectState, now: number): void {
    const minute = Math.floor(now / 60_000);
    if (minute <= s.minute) return;
    const h = s.history;
    h[s.minute % h.length] = s.current;
    for (let m = s.minute + 1; m < minute && m <= s.minute + h.length; m++) h[m % h.length] = 0;
    s.minute = minute;
    s.current = 0;
    const n = Math.min(h.length, minute - s.firstMinute);
    let sum = 0;
    let sq = 0;
    for (let i = 1; i <= n; i++) {
      const v = h[(minute - i) % h.length]!;
      sum += v;
      sq += v * v;
    }
    s.mean = n > 0 ? sum / n : 0;
    s.std = n > 0 ? Math.sqrt(Math.max(0, sq / n - s.mean * s.mean)) : 0;
  }

  private checkSpike(s: SubjectState, tokens: number, now: number): void {
    this.rollMinute(s, now);
    s.current += tokens;
    const t = this.config.tokenSpike;
    const threshold = Math.max(t.minTokensPerMinute, s.mean + t.stddevs * s.std, t.multiple * s.mean);
    if (s.current > threshold) {
      this.raise(s, 'token_spike', `${Math.round(s.current)} tokens this minute (usual ${Math.round(s.mean)} ± ${Math.round(s.std)} per minute; threshold ${Math.round(threshold)})`, now);
    }
  }

  private checkRepeat(s: SubjectState, print: Fingerprint, now: number): void {
    const r = this.config.repeatedPrompts;
    const windowMs = r.windowSeconds * 1000;
    let match: PrintState | undefined;
    for (const p of s.prints) {
      if (hammingDistance(p, print) <= r.maxDistance) {
        match = p;
        break;
      }
    }
    if (!match) {
      if (s.prints.length >= PRINTS_PER_SUBJECT) {
        let stalest = 0;
        for (let i = 1; i < s.prints.length; i++) if (s.prints[i]!.last < s.prints[stalest]!.last) stalest = i;
        s.prints.splice(stalest, 1);
      }
      s.prints.push({ hi: print.hi, lo: print.lo, count: 1, first: now, last: now });
      return;
    }
    if (now - match.first > windowMs) {
      match.count = 0; // a new window starts at this one
      match.first = now;
    }
    match.count++;
    match.last = now;
    if (match.count >= r.count) this.raise(s, 'repeated_prompt', `${match.count} near-identical prompts within ${r.windowSeconds} s`, now);
  }

  private raise(s: SubjectState, kind: AbuseKind, detail: string, now: number): void {
    const key = `${kind}|${subjectKey(s.subject, s.id, s.tenant)}`;
    const throttle = this.actionOf(kind) === 'throttle';
    const until = throttle ? now + this.config.throttle.durationSeconds * 1000 : null;
    const existing = this.flags.get(key);
    if (existing && !this.expired(existing, now)) {
      existing.lastSeen = now;
      existing.detail = detail;
      if (until !== null) existing.throttledUntil = until;
    } else {
      if (existing) this.flags.delete(key);
      this.evictFlags(now);
      this.flags.set(key, { kind, subject: s.subject, id: s.id, tenant: s.tenant, since: now, lastSeen: now, detail, throttledUntil: until });
      this.flagsRaised?.inc({ kind });
    }
    if (until !== null) {
      const tk = subjectKey(s.subject, s.id, s.tenant);
      const t = this.throttles.get(tk);
      if (t && t.until > now) Object.assign(t, { until: Math.max(t.until, until), kind, detail });
      else this.throttles.set(tk, { until, kind, detail, minute: -1, allowed: 0 });
    }
  }

  private expired(f: AbuseFlag, now: number): boolean {
    return now - f.lastSeen >= this.config.quietMinutes * 60_000 && (f.throttledUntil === null || now >= f.throttledUntil);
  }

  /** Keeps the flags and throttles within `maxSubjects`: expired ones first, then the oldest. */
  private evictFlags(now: number): void {
    // Either map may be the full one: activeFlags() prunes expired flags, never throttles.
    if (this.flags.size < this.config.maxSubjects && this.throttles.size < this.config.maxSubjects) return;
    for (const [k, f] of this.flags) if (this.expired(f, now)) this.flags.delete(k);
    for (const [k, t] of this.throttles) if (t.until <= now) this.throttles.delete(k);
    while (this.flags.size >= this.config.maxSubjects) {
      const oldest = this.flags.keys().next().value;
      if (oldest === undefined) break;
      this.flags.delete(oldest);
    }
    while (this.throttles.size >= this.config.maxSubjects) {
      const oldest = this.throttles.keys().next().value;
      if (oldest === undefined) break;
      this.throttles.delete(oldest);
    }
  }

  /** Flags raised and not yet expired, newest first. */
  activeFlags(): AbuseFlag[] {
    const now = this.now();
    const out: AbuseFlag[] = [];
    for (const [k, f] of this.flags) {
      if (this.expired(f, now)) this.flags.delete(k);
      else out.push({ ...f });
    }
    return out.sort((a, b) => b.lastSeen - a.lastSeen);
  }

  /**
   * Throws 429 abuse_throttled when the key or the end user is throttled (and past the few
   * requests a minute `throttle.requestsPerMinute` lets through). In memory, O(1).
   */
  checkThrottle(auth: { keyId: string; tenantId: string }, user: string | null | undefined): void {
    if (this.throttles.size === 0) return;
    const now = this.now();
    const refused = this.refusal('key', auth.keyId, auth.tenantId, now) ?? (user ? this.refusal('user', user, auth.tenantId, now) : undefined);
    if (refused) {
      this.refused?.inc({ kind: refused.kind });
      throw refused.error;
    }
  }

  private refusal(subject: AbuseSubject, id: string, tenant: string, now: number): { kind: AbuseKind; error: GatewayError } | undefined {
    const key = subjectKey(subject, id, tenant);
    const t = this.throttles.get(key);
    if (!t) return undefined;
    if (t.until <= now) {
      this.throttles.delete(key);
      return undefined;
    }
    const rpm = this.config.throttle.requestsPerMinute;
    const minute = Math.floor(now / 60_000);
    if (t.minute !== minute) {
      t.minute = minute;
      t.allowed = 0;
    }
    if (t.allowed < rpm) {
      t.allowed++;
      return undefined;
    }
    const untilNext = rpm > 0 ? (minute + 1) * 60_000 - now : Infinity;
    const retryAfter = Math.max(1, Math.ceil(Math.min(t.until - now, untilNext) / 1000));
    const who = subject === 'key' ? 'This API key' : `End user '${id}'`;
    const limit = rpm > 0 ? ` to ${rpm} request${rpm === 1 ? '' : 's'} per minute` : '';
    const message = `${who} is throttled${limit} until ${new Date(t.until).toISOString()} because of ${KIND_TEXT[t.kind]} (${t.detail}). Retry after ${retryAfter} s.`;
    return { kind: t.kind, error: new GatewayError('abuse_throttled', message, { headers: { 'retry-after': String(retryAfter) } }) };
  }

  /** `tollgate_abuse_flags_total{kind}`, `tollgate_abuse_throttled_requests_total{kind}`, `tollgate_abuse_active_flags{kind}`. */
  registerMetrics(registry: Registry): void {
    const self = this;
    this.flagsRaised = new Counter({ name: 'tollgate_abuse_flags_total', help: 'Abuse flags raised, by kind (token_spike, repeated_prompt, long_prompt).', labelNames: ['kind'], registers: [registry] });
    this.refused = new Counter({
      name: 'tollgate_abuse_throttled_requests_total',
      help: 'Requests refused (429 abuse_throttled) because their key or end user is throttled, by the kind of flag.',
      labelNames: ['kind'],
      registers: [registry],
    });
    new Gauge({
      name: 'tollgate_abuse_active_flags',
      help: 'Abuse flags currently active in this process, by kind.',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        const counts: Record<AbuseKind, number> = { token_spike: 0, repeated_prompt: 0, long_prompt: 0 };
        for (const f of self.activeFlags()) counts[f.kind]++;
        for (const kind of ABUSE_KINDS) this.set({ kind }, counts[kind]);
      },
    });
  }
}

function subjectKey(subject: AbuseSubject, id: string, tenant: string): string {
  return subject === 'key' ? `k\u0000${id}` : `u\u0000${tenant}\u0000${id}`;
}
