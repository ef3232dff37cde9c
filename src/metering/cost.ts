/**
 * Exact cost arithmetic. Prices are USD per million tokens; costs are kept as integer
 * pico-dollars (1e-12 USD) so that sums never drift: a price with up to six decimals per million
 * tokens is an integer number of pico-dollars per token.
 */
import type { Usage } from '../providers/types.js';

export interface Price {
  input: number;
  output: number;
  cachedInput?: number | undefined;
  /** Tokens an image input counts as when reserving (config `price.imageTokens`). */
  imageTokens?: { low: number; high: number } | undefined;
}

/** pico-dollars per token for a USD-per-million price. */
export function picoPerToken(usdPerMillion: number): number {
  return Math.round(usdPerMillion * 1_000_000);
}

/** The cost of a usage at a price, in integer pico-dollars. */
export function costPico(usage: Pick<Usage, 'prompt_tokens' | 'completion_tokens' | 'prompt_tokens_details'>, price: Price): number {
  const cached = Math.min(usage.prompt_tokens_details?.cached_tokens ?? 0, usage.prompt_tokens);
  const uncached = usage.prompt_tokens - cached;
  const cachedPrice = price.cachedInput ?? price.input;
  return (
    uncached * picoPerToken(price.input) +
    cached * picoPerToken(cachedPrice) +
    usage.completion_tokens * picoPerToken(price.output)
  );
}

/** Formats pico-dollars as a decimal USD string without float rounding ("0.000123"). */
export function formatUsd(pico: number): string {
  const neg = pico < 0;
  const abs = BigInt(Math.abs(Math.round(pico)));
  const whole = abs / 1_000_000_000_000n;
  const frac = (abs % 1_000_000_000_000n).toString().padStart(12, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}
