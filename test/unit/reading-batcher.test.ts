import assert from 'assert/strict';
import { ManualClock } from '../../nodes/shared/clock';
import {
  BatcherClosedError,
  BatcherEvent,
  FlushOutcome,
  QueueFullError,
  ReadingBatcher,
  ReadingBatcherOptions,
} from '../../nodes/cold-store/reading-batcher';
import { ManualTimers, settle } from '../../nodes/shared/timers';

interface Deferred {
  items: number[];
  at: number;
  resolve: (v: number[] | FlushOutcome<number>) => void;
  reject: (e: Error) => void;
}

/**
 * A flush that records each call. By default it succeeds at once with results `item * 10`;
 * `hold = true` keeps each call pending until the test resolves it; `failures` makes the next
 * calls fail with that error.
 */
class FakeFlush {
  calls: Deferred[] = [];
  hold = false;
  failures: Error[] = [];
  stored: number[] = [];
  constructor(private readonly clock: ManualClock) {}
  readonly fn = (items: number[]): Promise<number[] | FlushOutcome<number>> =>
    new Promise((resolve, reject) => {
      const call: Deferred = { items: [...items], at: this.clock.now(), resolve, reject };
      this.calls.push(call);
      const failure = this.failures.shift();
      if (failure) reject(failure);
      else if (!this.hold) this.commit(call);
    });
  commit(call: Deferred): void {
    this.stored.push(...call.items);
    call.resolve(call.items.map((i) => i * 10));
  }
}

type Outcome = { err: Error | null; results?: number[] };

function setup(opts: Partial<ReadingBatcherOptions<number, number>> = {}) {
  const clock = new ManualClock();
  const timers = new ManualTimers(clock);
  const flush = new FakeFlush(clock);
  const events: BatcherEvent[] = [];
  const batcher = new ReadingBatcher<number, number>({
    flush: flush.fn,
    clock,
    timers,
    random: () => 1,
    onEvent: (e) => events.push(e),
    ...opts,
  });
  const outcomes: Outcome[] = [];
  let next = 0;
  /** Adds a message of `n` fresh items (consecutive numbers); returns its outcome slot. */
  const send = (n = 1): Outcome[] => {
    const items = Array.from({ length: n }, () => next++);
    const slot: Outcome[] = [];
    batcher.add(items, (err, results) => {
      slot.push({ err, results });
      outcomes.push({ err, results });
    });
    return slot;
  };
  return { clock, timers, flush, events, batcher, send, outcomes };
}

describe('ReadingBatcher', () => {
  describe('triggers', () => {
    it('flushes at once when 500 items are queued, in one call', async () => {
      const t = setup();
      for (let i = 0; i < 499; i++) t.send();
      await settle();
      assert.equal(t.flush.calls.length, 0, 'no flush below the batch size');
      t.send();
      await settle();
      assert.equal(t.flush.calls.length, 1);
      assert.equal(t.flush.calls[0].items.length, 500);
      assert.equal(t.flush.calls[0].at, t.clock.now(), 'without waiting for the timer');
      assert.equal(t.outcomes.length, 500);
      assert.ok(t.outcomes.every((o) => o.err === null));
    });

    it('honours a configured maxBatch', async () => {
      const t = setup({ maxBatch: 3 });
      t.send(2);
      await settle();
      assert.equal(t.flush.calls.length, 0);
      t.send(1);
      await settle();
      assert.deepEqual(t.flush.calls.map((c) => c.items), [[0, 1, 2]]);
    });

    it('flushes 100 ms after the first queued item, with what arrived meanwhile', async () => {
      const t = setup();
      const start = t.clock.now();
      t.send();
      await t.timers.advance(60);
      t.send(2);
      await t.timers.advance(39);
      assert.equal(t.flush.calls.length, 0, 'not before 100 ms');
      await t.timers.advance(1);
      assert.equal(t.flush.calls.length, 1);
      assert.equal(t.flush.calls[0].at - start, 100);
      assert.deepEqual(t.flush.calls[0].items, [0, 1, 2]);
      assert.equal(t.timers.count, 0, 'no timer left when the queue is empty');
    });

    it('honours a configured maxDelayMs and starts a new delay for the next item', async () => {
      const t = setup({ maxDelayMs: 20 });
      t.send();
      await t.timers.advance(20);
      assert.equal(t.flush.calls.length, 1);
      await t.timers.advance(500);
      t.send();
      await t.timers.advance(19);
      assert.equal(t.flush.calls.length, 1);
      await t.timers.advance(1);
      assert.equal(t.flush.calls.length, 2);
    });

    it('keeps a message whole: a message above maxBatch is a batch of its own', async () => {
      const t = setup({ maxBatch: 4 });
      t.send(3);
      t.send(6);
      await settle();
      await t.timers.advance(100);
      assert.deepEqual(
        t.flush.calls.map((c) => c.items.length),
        [3, 6],
      );
    });
  });

  describe('ordering and results', () => {
    it('has one flush in flight at a time and keeps the order', async () => {
      const t = setup();
      t.flush.hold = true;
      for (let i = 0; i < 500; i++) t.send();
      await settle();
      assert.equal(t.flush.calls.length, 1);
      for (let i = 0; i < 700; i++) t.send();
      await t.timers.advance(1000);
      assert.equal(t.flush.calls.length, 1, 'the next batch waits for the one in flight');
      assert.equal(t.batcher.stats().inFlight, 500);
      assert.equal(t.batcher.stats().queued, 700);
      t.flush.commit(t.flush.calls[0]);
      await settle();
      assert.equal(t.flush.calls.length, 2, 'items that waited are flushed as soon as the flight lands');
      assert.equal(t.flush.calls[1].items.length, 500);
      t.flush.commit(t.flush.calls[1]);
      await settle();
      assert.equal(t.flush.calls.length, 3);
      t.flush.commit(t.flush.calls[2]);
      await settle();
      const all = t.flush.calls.flatMap((c) => c.items);
      assert.deepEqual(all, Array.from({ length: 1200 }, (_, i) => i));
      assert.equal(t.outcomes.length, 1200);
      assert.deepEqual(t.batcher.stats().written, 1200);
      assert.equal(t.batcher.stats().batches, 3);
    });

    it('gives each message the results of its own items', async () => {
      const t = setup();
      const a = t.send(1);
      const b = t.send(3);
      const c = t.send(2);
      await t.timers.advance(100);
      assert.equal(t.flush.calls.length, 1);
      assert.deepEqual(a, [{ err: null, results: [0] }]);
      assert.deepEqual(b, [{ err: null, results: [10, 20, 30] }]);
      assert.deepEqual(c, [{ err: null, results: [40, 50] }]);
    });

    it('counts duplicates reported by the flush and completes their messages', async () => {
      const clock = new ManualClock();
      const timers = new ManualTimers(clock);
      const seen = new Set<number>();
      const b = new ReadingBatcher<number, number>({
        clock,
        timers,
        flush: async (items) => {
          const dup = items.filter((i) => seen.has(i)).length;
          items.forEach((i) => seen.add(i));
          return { results: items.map((i) => i * 10), duplicates: dup };
        },
      });
      const got: Array<number[] | undefined> = [];
      b.add([1, 2], (err, r) => got.push(r));
      await timers.advance(100);
      b.add([1, 2], (err, r) => got.push(r));
      await timers.advance(100);
      assert.deepEqual(got, [
        [10, 20],
        [10, 20],
      ]);
      assert.equal(b.stats().written, 2);
      assert.equal(b.stats().duplicates, 2);
    });

    it('completes an empty message at once without a flush', async () => {
      const t = setup();
      const out: Outcome[] = [];
      t.batcher.add([], (err, results) => out.push({ err, results }));
      assert.deepEqual(out, [{ err: null, results: [] }]);
      await t.timers.advance(200);
      assert.equal(t.flush.calls.length, 0);
    });

    it('fails the batch, without retrying, when the flush returns the wrong number of results', async () => {
      const clock = new ManualClock();
      const timers = new ManualTimers(clock);
      let calls = 0;
      const b = new ReadingBatcher<number, number>({
        clock,
        timers,
        flush: async () => {
          calls++;
          return [1];
        },
      });
      const errs: Array<Error | null> = [];
      b.add([1, 2], (err) => errs.push(err));
      await timers.advance(10_000);
      assert.equal(calls, 1);
      assert.equal(errs.length, 1);
      assert.match(String(errs[0]?.message), /1 results for 2 items/);
      assert.equal(b.stats().failed, 2);
      assert.equal(b.stats().retries, 0);
    });
  });

  describe('database down', () => {
    it('retries with exponential backoff, fails no callback and loses nothing', async () => {
      const t = setup();
      const down = new Error('connect ECONNREFUSED 127.0.0.1:5432');
      t.flush.failures = [down, down, down, down];
      t.send(2);
      await t.timers.advance(100);
      assert.equal(t.flush.calls.length, 1);
      assert.equal(t.batcher.stats().connected, false);
      t.send(3); // arrives during the outage
      await t.timers.advance(100 + 200 + 400 + 799);
      assert.equal(t.flush.calls.length, 4);
      assert.equal(t.outcomes.length, 0, 'callbacks wait while the database is down');
      await t.timers.advance(1);
      const gaps = t.flush.calls.slice(1).map((c, i) => c.at - t.flush.calls[i].at);
      assert.deepEqual(gaps, [100, 200, 400, 800], 'doubling delays');
      assert.deepEqual(t.outcomes, [
        { err: null, results: [0, 10] },
        { err: null, results: [20, 30, 40] },
      ]);
      assert.deepEqual(t.flush.stored, [0, 1, 2, 3, 4], 'every item once, in order');
      const s = t.batcher.stats();
      assert.equal(s.retries, 4);
      assert.equal(s.connected, true);
      assert.equal(s.lastError, down.message);
      assert.equal(s.written, 5);
      assert.equal(s.queued + s.inFlight, 0);
    });

    it('retries the failed batch together with what queued up meanwhile', async () => {
      const t = setup();
      t.flush.failures = [new Error('down')];
      t.send(2);
      await t.timers.advance(100);
      t.send(1);
      await t.timers.advance(100);
      assert.deepEqual(t.flush.calls.map((c) => c.items), [[0, 1], [0, 1, 2]]);
    });

    it('caps the backoff at 5 s and jitters it down by at most 20 %', () => {
      const high = setup({ random: () => 0.999999 }).batcher;
      assert.equal(high.backoff(1), 100);
      assert.equal(high.backoff(2), 200);
      assert.equal(high.backoff(7), 5000);
      assert.equal(high.backoff(50), 5000);
      const low = setup({ random: () => 0 }).batcher;
      assert.equal(low.backoff(1), 80);
      assert.equal(low.backoff(50), 4000);
      const custom = setup({ retryBaseMs: 10, retryMaxMs: 50 }).batcher;
      assert.equal(custom.backoff(3), 40);
      assert.equal(custom.backoff(4), 50);
    });

    it('reports down once and up once with the number written since', async () => {
      const t = setup({ maxBatch: 2 });
      t.flush.failures = [new Error('gone'), new Error('gone again')];
      t.send(1);
      t.send(1);
      t.send(1);
      await settle();
      assert.deepEqual(t.events, [{ type: 'down', error: 'gone', waiting: 3 }]);
      await t.timers.advance(100);
      assert.equal(t.events.length, 1, 'a second failure of the same outage is not a new event');
      await t.timers.advance(200);
      assert.equal(t.flush.calls.length, 4, 'the backlog is written in two batches');
      assert.equal(t.events.length, 2);
      const up = t.events[1];
      assert.equal(up.type, 'up');
      assert.equal(up.type === 'up' && up.written, 3, 'after the backlog, not after its first batch');
      assert.equal(up.type === 'up' && up.downForMs, 300);
    });

    it('fails only the message with bad data when the error is not retryable', async () => {
      const bad = Object.assign(new Error('value out of range'), { code: '22003' });
      const clock = new ManualClock();
      const timers = new ManualTimers(clock);
      const calls: number[][] = [];
      const b = new ReadingBatcher<number, number>({
        clock,
        timers,
        isRetryable: (e) => (e as Error & { code?: string }).code !== '22003',
        flush: async (items) => {
          calls.push(items);
          if (items.includes(-1)) throw bad;
          return items;
        },
      });
      const out: Array<[string | null, number[] | undefined]> = [];
      const cb = (tag: string) => (err: Error | null, r?: number[]) => out.push([err ? `${tag}:${err.message}` : tag, r]);
      b.add([1, 2], cb('a'));
      b.add([3, -1], cb('b'));
      b.add([4], cb('c'));
      await timers.advance(100);
      // Bisected: the first half (2 messages) fails again, then each of its halves alone.
      assert.deepEqual(calls, [[1, 2, 3, -1, 4], [1, 2, 3, -1], [1, 2], [3, -1], [4]]);
      assert.deepEqual(out, [
        ['a', [1, 2]],
        ['b:value out of range', undefined],
        ['c', [4]],
      ]);
      assert.equal(b.stats().retries, 0);
      assert.equal(b.stats().failed, 2);
      assert.equal(b.stats().connected, true);
      // Back to normal batching afterwards.
      b.add([5], cb('d'));
      b.add([6], cb('e'));
      await timers.advance(100);
      assert.deepEqual(calls.at(-1), [5, 6]);
    });
  });

  describe('bounded queue', () => {
    it('refuses a message that would exceed maxQueued, at once, and counts it', async () => {
      const t = setup({ maxQueued: 10 });
      t.flush.hold = true;
      t.send(6);
      await t.timers.advance(100);
      assert.equal(t.batcher.stats().inFlight, 6, 'in-flight items count against the bound');
      const refused = t.send(5);
      assert.equal(refused.length, 1, 'answered synchronously');
      assert.ok(refused[0].err instanceof QueueFullError);
      assert.match(refused[0].err.message, /queue full/);
      const fits = t.send(4);
      assert.equal(fits.length, 0, 'exactly at the bound is accepted');
      const s = t.batcher.stats();
      assert.equal(s.refused, 1);
      assert.equal(s.refusedItems, 5);
      assert.equal(s.queued, 4);
      t.flush.commit(t.flush.calls[0]);
      await t.timers.advance(100);
      t.flush.commit(t.flush.calls[1]);
      await settle();
      assert.deepEqual(t.flush.stored, [0, 1, 2, 3, 4, 5, 11, 12, 13, 14]);
    });

    it('holds up to maxQueued during an outage, refuses beyond, and writes the held ones later', async () => {
      const t = setup({ maxQueued: 5 });
      t.flush.failures = Array.from({ length: 3 }, () => new Error('down'));
      for (let i = 0; i < 8; i++) t.send();
      await t.timers.advance(5000);
      assert.equal(t.batcher.stats().refused, 3);
      assert.equal(t.outcomes.filter((o) => o.err === null).length, 5);
      assert.deepEqual(t.flush.stored, [0, 1, 2, 3, 4]);
    });
  });

  describe('close', () => {
    it('flushes what is queued without waiting for the timer, then refuses new items', async () => {
      const t = setup();
      t.send(2);
      t.send(1);
      const closed = t.batcher.close();
      await settle();
      assert.equal(t.flush.calls.length, 1);
      assert.equal(t.flush.calls[0].at, t.clock.now());
      await closed;
      assert.equal(t.outcomes.length, 2);
      assert.ok(t.outcomes.every((o) => o.err === null));
      assert.equal(t.timers.count, 0, 'no timer left behind');
      const late = t.send(1);
      assert.ok(late[0].err instanceof BatcherClosedError);
      assert.equal(t.batcher.stats().closed, true);
    });

    it('resolves at once when nothing is queued', async () => {
      const t = setup();
      await t.batcher.close();
      assert.equal(t.timers.count, 0);
      assert.equal(t.flush.calls.length, 0);
    });

    it('keeps retrying until the deadline, then fails the rest saying how many were not stored', async () => {
      const t = setup();
      t.flush.failures = Array.from({ length: 100 }, () => new Error('ECONNREFUSED'));
      t.send(3);
      t.send(4);
      let closed = false;
      void t.batcher.close().then(() => (closed = true));
      await t.timers.advance(9_999);
      assert.equal(closed, false);
      assert.equal(t.outcomes.length, 0);
      assert.ok(t.flush.calls.length > 3, 'it kept trying');
      await t.timers.advance(1);
      assert.equal(closed, true);
      assert.equal(t.outcomes.length, 2);
      for (const o of t.outcomes) assert.match(String(o.err?.message), /7 reading\(s\) not stored.*ECONNREFUSED/);
      assert.equal(t.batcher.stats().failed, 7);
      assert.equal(t.timers.count, 0);
    });

    it('writes the backlog when the database comes back before the deadline', async () => {
      const t = setup();
      t.flush.failures = [new Error('down'), new Error('down')];
      t.send(3);
      const closed = t.batcher.close();
      await t.timers.advance(300);
      await closed;
      assert.deepEqual(t.flush.stored, [0, 1, 2]);
      assert.equal(t.outcomes[0].err, null);
    });

    it('fails a flush that never returns at the deadline and ignores its late result', async () => {
      const t = setup({ closeTimeoutMs: 500 });
      t.flush.hold = true;
      t.send(2);
      await t.timers.advance(100);
      const closed = t.batcher.close();
      await t.timers.advance(500);
      await closed;
      assert.match(String(t.outcomes[0]?.err?.message), /2 reading\(s\) not stored/);
      t.flush.commit(t.flush.calls[0]);
      await settle();
      assert.equal(t.outcomes.length, 1, 'the callback is called exactly once');
    });
  });

  describe('flush when idle (natural batching)', () => {
    /** Runs the deferred flushes by hand, so the test decides when "one turn later" is. */
    function idle(opts: Partial<ReadingBatcherOptions<number, number>> = {}) {
      const deferred: Array<() => void> = [];
      const t = setup({ flushWhenIdle: true, defer: (fn) => deferred.push(fn), ...opts });
      const turn = async () => {
        for (const fn of deferred.splice(0)) fn();
        await settle();
      };
      return { ...t, turn, deferred };
    }

    it('writes a lone message one turn later, without waiting for the timer', async () => {
      const t = idle();
      t.send();
      assert.equal(t.flush.calls.length, 0, 'not inside add');
      await t.turn();
      assert.equal(t.flush.calls.length, 1);
      assert.equal(t.flush.calls[0].at, t.clock.now(), 'no delay');
      assert.equal(t.outcomes.length, 1);
      assert.equal(t.outcomes[0].err, null);
    });

    it('groups the messages of one turn, and those that arrive during a flush, into the next batch', async () => {
      const t = idle();
      t.flush.hold = true;
      t.send();
      t.send(2);
      await t.turn();
      assert.deepEqual(t.flush.calls.map((c) => c.items), [[0, 1, 2]]);
      for (let i = 0; i < 4; i++) t.send();
      await t.turn();
      assert.equal(t.flush.calls.length, 1, 'one flush in flight at a time');
      t.flush.commit(t.flush.calls[0]);
      await settle();
      await t.turn();
      assert.deepEqual(t.flush.calls.map((c) => c.items), [[0, 1, 2], [3, 4, 5, 6]]);
    });

    it('still caps a batch at maxBatch and flushes a full batch at once', async () => {
      const t = idle({ maxBatch: 3 });
      t.flush.hold = true;
      t.send();
      await t.turn();
      for (let i = 0; i < 7; i++) t.send();
      t.flush.commit(t.flush.calls[0]);
      await settle();
      // The queue already holds a full batch: no need to wait for a turn.
      assert.deepEqual(t.flush.calls.map((c) => c.items.length), [1, 3]);
      t.flush.commit(t.flush.calls[1]);
      await settle();
      t.flush.commit(t.flush.calls[2]);
      await settle();
      await t.turn();
      t.flush.commit(t.flush.calls[3]);
      await settle();
      assert.deepEqual(t.flush.calls.map((c) => c.items.length), [1, 3, 3, 1]);
      assert.equal(t.outcomes.length, 8);
    });

    it('keeps the timer as an upper bound when the deferred flush does not come', async () => {
      const t = idle({ maxDelayMs: 50 });
      t.send();
      await t.timers.advance(50);
      assert.equal(t.flush.calls.length, 1);
      await t.turn(); // the late deferred call finds nothing to do
      assert.equal(t.flush.calls.length, 1);
    });

    it('leaves a retry to its backoff', async () => {
      const t = idle();
      t.flush.failures = [new Error('down')];
      t.send();
      await t.turn();
      assert.equal(t.flush.calls.length, 1);
      t.send();
      await t.turn();
      assert.equal(t.flush.calls.length, 1, 'no flush while the retry waits');
      await t.timers.advance(100);
      assert.deepEqual(t.flush.calls.map((c) => c.items), [[0], [0, 1]]);
    });
  });

  describe('large backlog', () => {
    it('drains 60 000 queued messages in order, in full batches (head index, compaction)', async () => {
      const t = setup({ maxQueued: 1_000_000 });
      t.flush.hold = true;
      for (let i = 0; i < 500; i++) t.send();
      await settle();
      for (let i = 0; i < 60_000; i++) t.send();
      const started = Date.now();
      let committed = 0;
      while (committed < t.flush.calls.length) {
        t.flush.commit(t.flush.calls[committed++]);
        await settle(1);
      }
      assert.equal(t.flush.stored.length, 60_500);
      assert.ok(t.flush.stored.every((v, i) => v === i), 'in arrival order');
      assert.ok(t.flush.calls.every((c) => c.items.length === 500));
      assert.equal(t.outcomes.length, 60_500);
      assert.equal(t.batcher.stats().queued, 0);
      assert.ok(Date.now() - started < 20_000);
    });
  });

  describe('cheap refusals', () => {
    it('refuses with a QueueFullError that names the count but carries no stack frames', async () => {
      const t = setup({ maxQueued: 2 });
      t.flush.hold = true;
      t.send(2);
      const [r] = t.send(3);
      assert.ok(r.err instanceof QueueFullError);
      assert.equal((r.err as QueueFullError).code, 'QUEUE_FULL');
      assert.match(r.err.message, /queue full \(2 readings waiting\).*3 reading\(s\) refused/);
      assert.doesNotMatch(String(r.err.stack), /\n\s+at /, 'no frames captured');
      assert.ok(Error.stackTraceLimit > 0, 'the global limit is restored');
      assert.match(String(new Error('x').stack), /\n\s+at /);
    });
  });
});
