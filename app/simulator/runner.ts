/**
 * Paces the simulated readings onto a publish function. Reading k belongs to stream k mod S and
 * is taken at start + k/rate, so readings are spread evenly in time and their values and
 * timestamps follow from (seed, start, rate) alone. A timer wakes every 1/rate seconds (at least
 * every 10 ms, at most every second) and publishes what is due in one small burst: 5000 readings
 * a second are 50 publishes per 10 ms tick, not 5000 timers.
 *
 * Bounded: at most `maxInflight` messages wait for their acknowledgement; while the broker is
 * slower than the rate, readings wait, and readings more than a second late are skipped (and
 * counted), so memory stays flat whatever the broker does. Stopping sends the readings still
 * batched, then waits for the acknowledgements in flight (bounded by a timeout).
 */
import { House } from './house';
import type { SimOptions } from './options';
import { BAD_KINDS, encodeMessage, makeStreams, readingAt, type BadKind, type SimReading, type Stream } from './readings';

export type Publish = (topic: string, payload: string, qos: 0 | 1 | 2, done: (err?: Error) => void) => void;

export interface SimulatorDeps {
  publish: Publish;
  log: (line: string) => void;
  /** Wall clock in ms (default Date.now). */
  now?: () => number;
}

export interface SimStats {
  /** Messages published (good and malformed). */
  messages: number;
  /** Well-formed readings inside the published messages. */
  readings: number;
  /** Malformed messages published (`badEvery`). */
  bad: number;
  acked: number;
  failed: number;
  inflight: number;
  /** Readings not published because they were more than a second late. */
  skipped: number;
  elapsedMs: number;
}

const MAX_LOGGED_FAILURES = 5;
const BACKLOG_SECONDS = 1;

export class Simulator {
  readonly streams: Stream[];
  /** Resolves with the final stats once stopped, by `stop()` or by reaching `count`/`duration`. */
  readonly finished: Promise<SimStats>;
  private resolveFinished!: (s: SimStats) => void;
  private readonly now: () => number;
  private house?: House;
  private startedAt = 0;
  /** Index of the next reading to take. */
  private next = 0;
  /** Readings to take in all, when `count` or `duration` limits the run. */
  private readonly limit: number;
  private readonly buffers: SimReading[][];
  private readonly intervalMs: number;
  private tickTimer?: NodeJS.Timeout;
  private reportTimer?: NodeJS.Timeout;
  private stopping?: Promise<SimStats>;
  private drained?: () => void;
  private lastReport = { at: 0, readings: 0 };
  private readonly stats: SimStats = { messages: 0, readings: 0, bad: 0, acked: 0, failed: 0, inflight: 0, skipped: 0, elapsedMs: 0 };

  constructor(
    private readonly opts: SimOptions,
    private readonly deps: SimulatorDeps,
  ) {
    this.now = deps.now ?? Date.now;
    this.streams = makeStreams(opts.prefix, opts.locations, opts.sensors);
    this.buffers = this.streams.map(() => []);
    this.intervalMs = 1000 / opts.rate;
    let limit = Infinity;
    if (opts.count !== undefined) limit = opts.count;
    // Readings scheduled before start + duration: k / rate < duration.
    if (opts.duration !== undefined) limit = Math.min(limit, Math.max(1, Math.ceil(opts.duration * opts.rate - 1e-9)));
    this.limit = limit;
    this.finished = new Promise((resolve) => (this.resolveFinished = resolve));
  }

  get started(): boolean {
    return this.house !== undefined;
  }

  /** Milliseconds between two readings of one sensor; below 1 ms they would share timestamps. */
  get sensorIntervalMs(): number {
    return (this.streams.length * 1000) / this.opts.rate;
  }

  /** Begins publishing (call once connected); the energy meters start now. */
  start(): void {
    if (this.house || this.stopping) return;
    this.startedAt = this.now();
    this.lastReport = { at: this.startedAt, readings: 0 };
    this.house = new House({ seed: this.opts.seed, utcOffsetMinutes: this.opts.utcOffsetMinutes, energyEpoch: this.startedAt });
    if (this.opts.reportSeconds > 0) {
      this.reportTimer = setInterval(() => this.deps.log(this.progressLine()), this.opts.reportSeconds * 1000);
    }
    this.tick();
  }

  snapshot(): SimStats {
    return { ...this.stats, elapsedMs: this.house ? (this.stopping ? this.stats.elapsedMs : this.now() - this.startedAt) : 0 };
  }

  progressLine(): string {
    const s = this.snapshot();
    const at = this.now();
    const seconds = (at - this.lastReport.at) / 1000;
    const rate = seconds > 0 ? (s.readings - this.lastReport.readings) / seconds : 0;
    this.lastReport = { at, readings: s.readings };
    return `sent ${s.readings} readings in ${s.messages} messages (${rate.toFixed(1)} readings/s), acked ${s.acked}, in flight ${s.inflight}, skipped ${s.skipped}, malformed ${s.bad}, failed ${s.failed}`;
  }

  /**
   * Stops taking readings, publishes what is batched, and waits up to `drainTimeoutMs` for the
   * acknowledgements in flight. Safe to call more than once.
   */
  stop(drainTimeoutMs = 10000): Promise<SimStats> {
    if (this.stopping) return this.stopping;
    clearTimeout(this.tickTimer);
    clearInterval(this.reportTimer);
    if (this.house) {
      for (let s = 0; s < this.streams.length; s++) if (this.buffers[s].length > 0) this.flush(s);
      this.stats.elapsedMs = this.now() - this.startedAt;
    }
    this.stopping = new Promise<void>((resolve) => {
      if (this.stats.inflight === 0) return resolve();
      const timer = setTimeout(resolve, drainTimeoutMs);
      this.drained = () => {
        clearTimeout(timer);
        resolve();
      };
    }).then(() => {
      const s = this.snapshot();
      this.resolveFinished(s);
      return s;
    });
    return this.stopping;
  }

  private tick(): void {
    const house = this.house!;
    const elapsed = this.now() - this.startedAt;
    // Readings due by now: reading k is due at k * interval (reading 0 at once).
    let target = Math.min(this.limit, Math.floor(elapsed / this.intervalMs) + 1);
    const backlog = Math.max(this.opts.batch, Math.ceil(this.opts.rate * BACKLOG_SECONDS));
    if (target - this.next > backlog) {
      this.stats.skipped += target - backlog - this.next;
      this.next = target - backlog;
    }
    const S = this.streams.length;
    while (this.next < target && this.stats.inflight < this.opts.maxInflight) {
      const s = this.next % S;
      this.buffers[s].push(readingAt(house, this.streams[s], this.startedAt + this.next * this.intervalMs));
      this.next++;
      if (this.buffers[s].length >= this.opts.batch) this.flush(s);
    }
    const durationOver = this.opts.duration !== undefined && elapsed >= this.opts.duration * 1000;
    if (this.next >= this.limit || durationOver) {
      void this.stop();
      return;
    }
    this.tickTimer = setTimeout(() => this.tick(), Math.min(1000, Math.max(10, this.intervalMs)));
  }

  private flush(s: number): void {
    const readings = this.buffers[s];
    this.buffers[s] = [];
    const stream = this.streams[s];
    let bad: BadKind | undefined;
    if (this.opts.badEvery !== undefined && (this.stats.messages + 1) % this.opts.badEvery === 0) {
      bad = BAD_KINDS[this.stats.bad % BAD_KINDS.length].kind;
    }
    const payload = encodeMessage(readings, { array: this.opts.batch > 1, bad });
    this.stats.messages++;
    if (bad === undefined) this.stats.readings += readings.length;
    else {
      this.stats.bad++;
      // The other readings of a batch stay valid, unless the whole text is cut short.
      if (bad !== 'truncated_json') this.stats.readings += readings.length - 1;
    }
    this.stats.inflight++;
    this.deps.publish(stream.topic, payload, this.opts.qos, (err) => {
      this.stats.inflight--;
      if (err) {
        this.stats.failed++;
        if (this.stats.failed <= MAX_LOGGED_FAILURES) {
          this.deps.log(`publish to ${stream.topic} failed: ${err.message}${this.stats.failed === MAX_LOGGED_FAILURES ? ' (further failures only counted)' : ''}`);
        }
      } else {
        this.stats.acked++;
      }
      if (this.stats.inflight === 0 && this.drained) this.drained();
    });
  }
}
