/**
 * The fetch schedule of one node, free of Node-RED: fetch on start, then every interval; after a
 * failure retry as `retryPlan` says; a manual trigger fetches now; never two fetches at once;
 * `stop()` clears the timer and aborts the request in flight.
 */
import type { Clock } from '../clock';
import { FetchError, sanitize } from './errors';
import { retryPlan, type RetryPolicy } from './retry';
import type { TimerHandle, Timers } from '../timers';

export type FetchOutcome<T> = { ok: true; value: T; at: number } | { ok: false; error: FetchError; at: number };

export type SchedulePhase =
  | 'idle' // not started
  | 'fetching'
  | 'waiting' // for the next regular fetch
  | 'retrying' // for an early retry after a failure
  | 'halted' // the key was rejected: only a manual trigger fetches again
  | 'stopped';

export interface ScheduleState {
  phase: SchedulePhase;
  /** When the next fetch is due (ms since epoch), in `waiting` and `retrying`. */
  nextAt?: number;
  /** Consecutive retryable failures so far. */
  attempt: number;
}

export interface FetchSchedulerOptions<T> {
  /** One fetch; must reject with a `FetchError` (anything else is wrapped). */
  run(signal: AbortSignal): Promise<T>;
  intervalMs: number;
  /**
   * true (default): fetch on start and every `intervalMs`. false: fetch only on `trigger()` (an
   * input msg, e.g. from an inject behind a leader gate when several instances share the work);
   * a failed fetch is still retried as `retry` says.
   */
  selfScheduled?: boolean;
  retry: RetryPolicy;
  clock: Clock;
  timers: Timers;
  random?: () => number;
  /** After each fetch that was not cut short by `stop()`; `manual` when a trigger asked for it. */
  onOutcome?(outcome: FetchOutcome<T>, state: ScheduleState, manual: boolean): void;
  /** On every phase change (e.g. to show "fetching"). */
  onPhase?(state: ScheduleState): void;
}

export function toFetchError(err: unknown): FetchError {
  if (err instanceof FetchError) return err;
  // Our own code failed on something unexpected: report it without anything secret in it.
  const message = sanitize(err instanceof Error ? err.message : String(err));
  return new FetchError('invalid_response', `unexpected error: ${message}`);
}

export class FetchScheduler<T> {
  private phase: SchedulePhase = 'idle';
  private nextAt: number | undefined;
  private attempt = 0;
  private timer: TimerHandle | undefined;
  private inflight: Promise<FetchOutcome<T>> | undefined;
  private inflightManual = false;
  private controller: AbortController | undefined;

  constructor(private readonly opts: FetchSchedulerOptions<T>) {}

  get state(): ScheduleState {
    return { phase: this.phase, nextAt: this.nextAt, attempt: this.attempt };
  }

  /** Fetches now and keeps the schedule going. Calling it again does nothing. */
  start(): void {
    if (this.phase !== 'idle' || this.opts.selfScheduled === false) return;
    void this.runNow(false);
  }

  /**
   * A manual fetch: now, or joins the one in flight (no overlap). Resumes a halted schedule.
   * Resolves (never rejects) when that fetch is over.
   */
  trigger(): Promise<FetchOutcome<T>> {
    if (this.phase === 'stopped') {
      return Promise.resolve({ ok: false, error: new FetchError('aborted', 'fetching has stopped'), at: this.opts.clock.now() });
    }
    if (this.inflight) {
      this.inflightManual = true;
      return this.inflight;
    }
    return this.runNow(true);
  }

  /** Clears the timer and aborts the fetch in flight; nothing runs after this. */
  stop(): void {
    this.phase = 'stopped';
    this.nextAt = undefined;
    this.clearTimer();
    this.controller?.abort();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.opts.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private setPhase(phase: SchedulePhase, nextAt?: number): void {
    this.phase = phase;
    this.nextAt = nextAt;
    this.opts.onPhase?.(this.state);
  }

  private runNow(manual: boolean): Promise<FetchOutcome<T>> {
    this.clearTimer();
    this.setPhase('fetching');
    const controller = new AbortController();
    this.controller = controller;
    this.inflightManual = manual;
    const p = (async (): Promise<FetchOutcome<T>> => {
      let outcome: FetchOutcome<T>;
      try {
        const value = await this.opts.run(controller.signal);
        outcome = { ok: true, value, at: this.opts.clock.now() };
      } catch (err) {
        outcome = { ok: false, error: toFetchError(err), at: this.opts.clock.now() };
      }
      this.inflight = undefined;
      this.controller = undefined;
      if (this.phase !== 'stopped') this.afterFetch(outcome);
      return outcome;
    })();
    this.inflight = p;
    return p;
  }

  private afterFetch(outcome: FetchOutcome<T>): void {
    const now = this.opts.clock.now();
    if (outcome.ok) {
      this.attempt = 0;
      this.schedule('waiting', this.opts.intervalMs, now);
    } else {
      const plan = retryPlan(outcome.error, this.attempt + 1, this.opts.retry, this.opts.random);
      if (plan.action === 'retry') {
        this.attempt += 1;
        this.schedule('retrying', plan.delayMs, now);
      } else if (plan.action === 'wait-interval') {
        this.attempt = 0;
        this.schedule('waiting', this.opts.intervalMs, now);
      } else {
        this.attempt = 0;
        this.setPhase('halted');
      }
    }
    this.opts.onOutcome?.(outcome, this.state, this.inflightManual);
  }

  private schedule(phase: 'waiting' | 'retrying', delayMs: number, now: number): void {
    this.clearTimer();
    if (phase === 'waiting' && this.opts.selfScheduled === false) {
      this.setPhase('idle'); // the next fetch is the next trigger
      return;
    }
    this.timer = this.opts.timers.setTimeout(() => {
      this.timer = undefined;
      void this.runNow(false);
    }, delayMs);
    this.setPhase(phase, now + delayMs);
  }
}
