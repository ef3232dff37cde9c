/**
 * Routing's interfaces: the complexity classifier and its rules, feature flags, experiments and
 * shadow traffic. Implementations: classifier.ts, rules.ts, flags.ts (+ storage), experiments.ts,
 * shadow.ts; the pipeline uses them in src/pipeline/stages/route.ts.
 */
import type { ChatCompletionRequest } from '../providers/types.js';

/* ------------------------------------------------------------------------------------------ */
/* Classifier                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/** What the classifier and the rules see of a request (cheap to compute, no I/O). */
export interface RequestFeatures {
  /** Characters of all message text. */
  promptChars: number;
  /** Estimated tokens of all message text (chars / 4: no tokenizer on this path). */
  promptTokens: number;
  /** Characters of the last user message. */
  lastUserChars: number;
  /** Messages in the conversation (system included). */
  messages: number;
  /** User turns. */
  userTurns: number;
  hasSystem: boolean;
  /** Code: fences, code-like syntax, or a request to write code ("a Python function", "in Go"). */
  hasCode: boolean;
  /** Math: equations, LaTeX, math vocabulary. */
  hasMath: boolean;
  /** Asks for reasoning or explanation: "step by step", "prove", "explain (why)", "analyze", "compare", "how do I", "difference between"... */
  asksReasoning: boolean;
  /** Asks for structure: JSON, a table, a schema, a list of N... (or response_format json). */
  asksStructure: boolean;
  hasTools: boolean;
  /** response_format json_object / json_schema. */
  jsonMode: boolean;
  /** max_tokens / max_completion_tokens, when given. */
  maxTokens: number | null;
  hasImages: boolean;
}

/** Who is asking (for rules: "tenant tier premium -> large"). */
export interface Requester {
  tenantId: string;
  /** The customer tier of the key (free, standard, premium...). */
  tier: string;
  keyId: string;
  userId: string | null;
}

export interface Classification {
  /** Index into the route's tiers, cheapest first. */
  tier: number;
  /** A score in [0, 1] (0 easy, 1 hard), for logs and metrics. */
  score: number;
  /** Short reasons (features that weighed), for logs and debugging. */
  reasons: string[];
}

/**
 * Picks a tier for a request. Behind an interface so a learned classifier can replace the
 * built-in one. Pure and synchronous; well under a millisecond.
 */
export interface Classifier {
  readonly name: string;
  /** `tiers` = how many tiers the route has (>= 1); the answer is in [0, tiers - 1]. */
  classify(features: RequestFeatures, tiers: number): Classification;
}

/** Extracts the features of a chat request. */
export type FeatureExtractor = (body: ChatCompletionRequest) => RequestFeatures;

/* ------------------------------------------------------------------------------------------ */
/* Rules (config: routes.<name>.rules)                                                          */
/* ------------------------------------------------------------------------------------------ */

/**
 * A rule's condition: every field given must hold (AND). Numeric comparisons take
 * `{gt?, gte?, lt?, lte?}`; string fields an exact value or a list of values (any).
 */
export interface RuleCondition {
  tenantTier?: string | string[];
  tenant?: string | string[];
  key?: string | string[];
  user?: string | string[];
  hasTools?: boolean;
  hasCode?: boolean;
  hasMath?: boolean;
  asksReasoning?: boolean;
  asksStructure?: boolean;
  jsonMode?: boolean;
  hasImages?: boolean;
  promptTokens?: NumericCondition;
  messages?: NumericCondition;
  maxTokens?: NumericCondition;
}

export interface NumericCondition {
  gt?: number;
  gte?: number;
  lt?: number;
  lte?: number;
}

/** What a matching rule does: a fixed tier, or bounds on the classifier's choice. Tier names of the route. */
export interface RuleAction {
  tier?: string;
  minTier?: string;
  maxTier?: string;
}

export interface Rule extends RuleAction {
  when: RuleCondition;
}

/* ------------------------------------------------------------------------------------------ */
/* Feature flags                                                                               */
/* ------------------------------------------------------------------------------------------ */

/** Who a flag applies to: every list given must contain the request's value (AND across fields). */
export interface FlagTargeting {
  tenants?: string[];
  keys?: string[];
  users?: string[];
  /** Customer tiers (free, standard, premium...). */
  tiers?: string[];
  /**
   * Share of the targeted requests that get the flag, 0-100 (default 100). Sticky: bucketed by
   * a hash of the flag's name and the end user (or the key when there is no end user), so a
   * user inside at 5% stays inside at 25%.
   */
  percentage?: number;
}

/** What an active flag changes for requests to `route` (a route or model name). */
export interface FlagEffect {
  route: string;
  /** Serve the request with this model instead (a public model name). */
  model?: string;
  /** Replace the route's tier mapping: tier name -> ordered model names. */
  tiers?: Record<string, string[]>;
  /** Replace the route's cache mode. */
  cacheMode?: 'deterministic' | 'always' | 'off';
}

export interface Flag {
  /** Unique, `[A-Za-z0-9_.-]{1,64}`. */
  name: string;
  description: string;
  enabled: boolean;
  targeting: FlagTargeting;
  effect: FlagEffect;
  createdAt: number;
  updatedAt: number;
  /** Key id of the admin who last changed it. */
  updatedBy: string;
}

export interface FlagAuditEntry {
  id: number;
  flag: string;
  action: 'create' | 'update' | 'delete';
  /** The flag before and after (null for create / delete). */
  before: Flag | null;
  after: Flag | null;
  actor: string;
  at: number;
}

/* ------------------------------------------------------------------------------------------ */
/* Experiments and shadow traffic                                                              */
/* ------------------------------------------------------------------------------------------ */

/** Which experiment and variant served a request (recorded in the ledger). */
export interface ExperimentAssignment {
  experiment: string;
  variant: string;
}

/* ------------------------------------------------------------------------------------------ */
/* Stores (sqlite | postgres; tables of migration 6 / 5)                                       */
/* ------------------------------------------------------------------------------------------ */

export type NewFlag = Pick<Flag, 'name' | 'description' | 'enabled' | 'targeting' | 'effect'>;
export type FlagPatch = Partial<Pick<Flag, 'description' | 'enabled' | 'targeting' | 'effect'>>;

/**
 * Feature flags and their audit trail. Every change writes its audit entry in the same
 * transaction. Errors: RecordConflict (create of an existing name), RecordNotFound (update or
 * delete of a missing one), from src/storage/types.ts.
 */
export interface FlagStore {
  list(): Promise<Flag[]>;
  get(name: string): Promise<Flag | null>;
  create(flag: NewFlag, actor: string): Promise<Flag>;
  update(name: string, patch: FlagPatch, actor: string): Promise<Flag>;
  delete(name: string, actor: string): Promise<void>;
  /** Newest first; `flag` filters; `beforeId` pages. */
  audit(opts?: { flag?: string; limit?: number; beforeId?: number }): Promise<FlagAuditEntry[]>;
}

/** Client feedback: the latest verdict per (tenant, request id as the client saw it). */
export interface FeedbackStore {
  put(f: { tenantId: string; requestId: string; good: boolean; comment: string; at: number }): Promise<void>;
}

/** One request's answer and its shadow candidate's. */
export interface ShadowPair {
  requestId: string;
  ts: number;
  tenantId: string;
  route: string;
  primaryModel: string;
  shadowModel: string;
  primaryLatencyMs: number;
  shadowLatencyMs: number;
  primaryPromptTokens: number;
  primaryCompletionTokens: number;
  shadowPromptTokens: number;
  shadowCompletionTokens: number;
  primaryCostPico: number;
  shadowCostPico: number;
  /** Cosine similarity of the two answers (cache embedder); null when the shadow failed. */
  similarity: number | null;
  /** 200, or the shadow call's failure status (e.g. 502, 504). */
  shadowStatus: number;
  error: string;
}
