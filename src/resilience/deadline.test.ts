import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UpstreamError } from '../providers/types.js';
import { Deadline } from './deadline.js';

const listeners = (signal: AbortSignal) => getEventListeners(signal, 'abort').length;

function reasonOf(signal: AbortSignal): UpstreamError {
  expect(signal.aborted).toBe(true);
  expect(signal.reason).toBeInstanceOf(UpstreamError);
  return signal.reason as UpstreamError;
}

describe('Deadline', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('counts down and aborts its signal with a timeout when the budget runs out', () => {
    const d = new Deadline(1_000);
    vi.advanceTimersByTime(400);
    expect(d.remainingMs()).toBe(600);
    expect(d.expired()).toBe(false);
    vi.advanceTimersByTime(599);
    expect(d.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(d.expired()).toBe(true);
    expect(d.remainingMs()).toBe(0);
    const reason = reasonOf(d.signal);
    expect(reason.kind).toBe('timeout');
    expect(reason.retryable).toBe(true);
    expect(reason.message).toBe('request deadline of 1000ms exceeded');
  });

  it('uses the injected clock for remainingMs', () => {
    let t = 5_000;
    const d = new Deadline(1_000, undefined, () => t);
    t += 250;
    expect(d.remainingMs()).toBe(750);
    t += 2_000;
    expect(d.remainingMs()).toBe(0);
    expect(d.expired()).toBe(true);
    d.dispose();
  });

  it('aborts an attempt after its own timeout with an attempt timeout reason', () => {
    const d = new Deadline(10_000);
    const a = d.attempt(300);
    vi.advanceTimersByTime(299);
    expect(a.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    const reason = reasonOf(a.signal);
    expect(reason.kind).toBe('timeout');
    expect(reason.message).toBe('attempt timed out after 300ms');
    expect(d.signal.aborted).toBe(false);
    expect(d.remainingMs()).toBe(9_700);
  });

  it('caps an attempt at the time left, with the deadline as the reason', () => {
    const d = new Deadline(1_000);
    vi.advanceTimersByTime(800);
    const a = d.attempt(5_000);
    vi.advanceTimersByTime(199);
    expect(a.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(reasonOf(a.signal).message).toBe('request deadline of 1000ms exceeded');
    expect(a.signal.reason).toBe(d.signal.reason);
  });

  it('caps an attempt at the injected clock even when timers lag behind it', () => {
    let t = 0;
    const d = new Deadline(1_000, undefined, () => t);
    t = 900; // the clock moved, the timers did not
    const a = d.attempt(5_000);
    vi.advanceTimersByTime(100);
    expect(reasonOf(a.signal).message).toBe('request deadline of 1000ms exceeded');
    expect(d.signal.aborted).toBe(true);
  });

  it('hands out an already aborted attempt once the deadline passed', () => {
    const d = new Deadline(100);
    vi.advanceTimersByTime(100);
    const a = d.attempt(1_000);
    expect(reasonOf(a.signal).message).toBe('request deadline of 100ms exceeded');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('propagates a parent abort and its reason to the deadline and its attempts', () => {
    const parent = new AbortController();
    const d = new Deadline(10_000, parent.signal);
    const a = d.attempt(1_000);
    const reason = new UpstreamError('aborted', 'client went away');
    parent.abort(reason);
    expect(d.signal.reason).toBe(reason);
    expect(a.signal.reason).toBe(reason);
    expect(d.expired()).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    expect(listeners(parent.signal)).toBe(0);
  });

  it('starts aborted when the parent already is', () => {
    const reason = new Error('gone');
    const d = new Deadline(10_000, AbortSignal.abort(reason));
    expect(d.signal.reason).toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('rearm restarts the attempt timer (stream idle timeout)', () => {
    const d = new Deadline(60_000);
    const a = d.attempt(1_000); // time to first chunk
    vi.advanceTimersByTime(900);
    a.rearm(500); // a chunk arrived: at most 500 ms until the next
    vi.advanceTimersByTime(400);
    a.rearm(500);
    vi.advanceTimersByTime(400);
    a.rearm(500);
    vi.advanceTimersByTime(499);
    expect(a.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(reasonOf(a.signal).message).toBe('attempt timed out after 500ms');
    a.rearm(500); // no-op once aborted
    expect(vi.getTimerCount()).toBe(1); // only the deadline's
  });

  it('rearm is capped by the deadline too', () => {
    const d = new Deadline(1_000);
    const a = d.attempt(5_000);
    vi.advanceTimersByTime(900);
    a.rearm(5_000);
    vi.advanceTimersByTime(100);
    expect(reasonOf(a.signal).message).toBe('request deadline of 1000ms exceeded');
  });

  it('attempt dispose removes its timer and its listener, and never aborts', () => {
    const d = new Deadline(10_000);
    const a = d.attempt(1_000);
    expect(listeners(d.signal)).toBe(1);
    expect(vi.getTimerCount()).toBe(2);
    a.dispose();
    expect(listeners(d.signal)).toBe(0);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(2_000);
    expect(a.signal.aborted).toBe(false);
    a.rearm(10); // no-op after dispose
    expect(vi.getTimerCount()).toBe(1);
  });

  it('attempts clean up after themselves when they time out', () => {
    const d = new Deadline(10_000);
    for (let i = 0; i < 50; i++) {
      d.attempt(10);
      vi.advanceTimersByTime(10);
    }
    expect(listeners(d.signal)).toBe(0);
    expect(vi.getTimerCount()).toBe(1);
  });

  it('dispose removes the listener on the parent, its timer and those of open attempts', () => {
    const parent = new AbortController();
    const d = new Deadline(10_000, parent.signal);
    const a = d.attempt(1_000);
    d.attempt(2_000);
    expect(listeners(parent.signal)).toBe(1);
    expect(listeners(d.signal)).toBe(2);
    expect(vi.getTimerCount()).toBe(3);
    d.dispose();
    expect(listeners(parent.signal)).toBe(0);
    expect(listeners(d.signal)).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    parent.abort(new Error('late'));
    expect(d.signal.aborted).toBe(false);
    expect(a.signal.aborted).toBe(false);
  });

  it('does not leak parent listeners across many requests', () => {
    const parent = new AbortController(); // e.g. one long-lived connection signal
    for (let i = 0; i < 100; i++) new Deadline(1_000, parent.signal).dispose();
    expect(listeners(parent.signal)).toBe(0);
  });

  it('unrefs its timers so a pending deadline does not hold the process open', () => {
    vi.useRealTimers();
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const d = new Deadline(60_000);
    const a = d.attempt(1_000);
    const timers = spy.mock.results.map((r) => r.value as NodeJS.Timeout);
    expect(timers).toHaveLength(2);
    for (const timer of timers) expect(timer.hasRef()).toBe(false);
    a.dispose();
    d.dispose();
    spy.mockRestore();
  });

  it('handles budgets beyond the 24.8-day setTimeout limit', () => {
    const thirtyDays = 30 * 24 * 3_600_000;
    const d = new Deadline(thirtyDays);
    vi.advanceTimersByTime(1_000);
    expect(d.signal.aborted).toBe(false);
    vi.advanceTimersByTime(thirtyDays - 1_001);
    expect(d.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(d.signal.aborted).toBe(true);
  });

  it('is expired at once for a zero budget', () => {
    const d = new Deadline(0);
    expect(reasonOf(d.signal).kind).toBe('timeout');
    expect(vi.getTimerCount()).toBe(0);
  });
});
