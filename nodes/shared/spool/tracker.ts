/**
 * Process-wide completion tracker: knows, per Node-RED `_msgid`, which spool entries a message came
 * from (one, or a batch of them: sensor-in's batch output) and how many of its readings must still
 * be stored. The entries are removed when every accepted reading is stored (cold-store) and every
 * rejected one dead-lettered (sensor-validate, or cold-store for a row the database refuses for
 * good). Untracked msgids (HTTP POST, the stock mqtt in node) cost one Map lookup.
 */
import type { SpoolSink } from './spool';

export interface SpoolRef {
  sink: SpoolSink;
  id: number;
  topic: string;
  payload: Buffer;
}

export interface Rejection {
  reason: string;
  /** The rejected reading as received, when there is one (else the whole raw payload is kept). */
  reading?: unknown;
  /** Which of the message's entries it came from (its index in a batch); default the first. */
  entry?: number;
}

interface Pending {
  refs: SpoolRef[];
  /** Readings still to be settled; null until sensor-validate said how many were accepted. */
  expected: number | null;
  settled: number;
  /** Other work on the message still running (the hot-window push): the entry waits for it too. */
  holds: number;
}

function readingText(reading: unknown): string | null {
  if (reading === undefined) return null;
  try {
    return JSON.stringify(reading) ?? null;
  } catch {
    return null;
  }
}

/**
 * The entry a stored reading came from, for a dead letter: in a batch, the first whose topic ends
 * in the reading's `/{location}/{sensor_type}` (validation made them agree), else the first.
 */
function refOfReading(refs: SpoolRef[], reading: unknown): SpoolRef {
  if (refs.length === 1 || typeof reading !== 'object' || reading === null) return refs[0];
  const r = reading as { location?: unknown; sensor_type?: unknown };
  const tail = `/${String(r.location)}/${String(r.sensor_type)}`;
  return refs.find((ref) => ref.topic.endsWith(tail)) ?? refs[0];
}

export class CompletionTracker {
  private readonly pending = new Map<string, Pending>();
  completed = 0;

  get size(): number {
    return this.pending.size;
  }

  has(msgid: string | undefined): boolean {
    return msgid !== undefined && this.pending.has(msgid);
  }

  /** `refs`: the entry of a message, or the entries of a batch (all settled together). */
  track(msgid: string, refs: SpoolRef | SpoolRef[]): void {
    this.pending.set(msgid, { refs: Array.isArray(refs) ? refs : [refs], expected: null, settled: 0, holds: 0 });
  }

  /**
   * Work on this message that the spool entry must wait for (the hot-window push): so that
   * sensor-in's bound on pending entries (`maxPending`) also bounds that path under overload,
   * instead of letting it queue up in memory behind a faster cold store. Pair with `release`.
   */
  hold(msgid: string | undefined): void {
    if (msgid === undefined) return;
    const p = this.pending.get(msgid);
    if (p) p.holds++;
  }

  /** The held work finished (either way: a failed push is reported by its node, not replayed). */
  release(msgid: string | undefined): void {
    if (msgid === undefined) return;
    const p = this.pending.get(msgid);
    if (!p || p.holds === 0) return;
    p.holds--;
    this.check(msgid, p);
  }

  /**
   * After validation: `accepted` readings will be stored downstream; the rejected ones are
   * dead-lettered now with their reason. No accepted reading: the entry is complete at once.
   */
  expect(msgid: string | undefined, accepted: number, rejected: readonly Rejection[] = []): void {
    if (msgid === undefined) return;
    const p = this.pending.get(msgid);
    if (!p) return;
    for (const r of rejected) {
      const ref = p.refs[r.entry ?? 0] ?? p.refs[0];
      const text = readingText(r.reading);
      ref.sink.deadLetterSoon({ topic: ref.topic, payload: text ?? ref.payload, reason: r.reason });
    }
    p.expected = (p.expected ?? 0) + accepted;
    this.check(msgid, p);
  }

  /** `n` readings of this message are committed to the database. */
  stored(msgid: string | undefined, n: number): void {
    if (msgid === undefined) return;
    const p = this.pending.get(msgid);
    if (!p) return;
    p.settled += n;
    this.check(msgid, p);
  }

  /** `readings` of this message were refused for good (poison): dead-lettered with the reason. */
  failed(msgid: string | undefined, readings: readonly unknown[], reason: string): void {
    if (msgid === undefined) return;
    const p = this.pending.get(msgid);
    if (!p) return;
    for (const r of readings) {
      const ref = refOfReading(p.refs, r);
      ref.sink.deadLetterSoon({ topic: ref.topic, payload: readingText(r) ?? ref.payload, reason });
    }
    p.settled += Math.max(1, readings.length);
    this.check(msgid, p);
  }

  /** Gives up tracking (e.g. write queue full): the entry stays in the spool and is replayed. */
  forget(msgid: string | undefined): void {
    if (msgid !== undefined) this.pending.delete(msgid);
  }

  /** Drops every entry of one spool (its node closed): they are replayed on the next start. */
  forgetSink(sink: SpoolSink): void {
    for (const [k, p] of this.pending) if (p.refs.some((r) => r.sink === sink)) this.pending.delete(k);
  }

  private check(msgid: string, p: Pending): void {
    if (p.expected === null || p.settled < p.expected || p.holds > 0) return;
    this.pending.delete(msgid);
    this.completed++;
    for (const ref of p.refs) ref.sink.removeSoon(ref.id);
  }
}

/** The one tracker of this process, shared by sensor-in, sensor-validate and cold-store. */
export const completions = new CompletionTracker();
