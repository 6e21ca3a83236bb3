import assert from 'assert/strict';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { Spool, SpoolClosedError } from '../../nodes/shared/spool/spool';
import { CompletionTracker } from '../../nodes/shared/spool/tracker';
import { ReadingBatcher, isPermanentFailure } from '../../nodes/cold-store/reading-batcher';
import { ManualClock } from '../../nodes/shared/clock';
import { ManualTimers } from '../../nodes/shared/timers';

const tick = () => new Promise((r) => setImmediate(r));

interface SyncCall {
  fd: number;
  /** Completes the held fdatasync: runs the real one (on success) and calls back. */
  finish(err: Error | null): void;
}

/** Holds every `fs.fdatasync` call until the test finishes it, and records its fd. */
async function withFdatasyncSpy(body: (calls: SyncCall[]) => Promise<void>): Promise<void> {
  const real = fs.fdatasync;
  const calls: SyncCall[] = [];
  (fs as { fdatasync: unknown }).fdatasync = (fd: number, cb: (err: Error | null) => void) => {
    calls.push({ fd, finish: (err) => (err ? cb(err) : real(fd, cb)) });
  };
  try {
    await body(calls);
  } finally {
    (fs as { fdatasync: unknown }).fdatasync = real;
  }
}
const entry = (i: number) => ({ topic: `HyperVolt/sensors/room/ldr`, payload: Buffer.from(`{"i":${i}}`), receivedAt: 1000 + i });

describe('Spool', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-spool-'));
    file = path.join(dir, 'sub', 'spool.db');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('appends, lists pending oldest first in pages, removes, and keeps entries across reopen', () => {
    const s = new Spool(file);
    const ids = s.appendNow([entry(1), entry(2), entry(3)]);
    assert.equal(ids.length, 3);
    assert.ok(ids[0] < ids[1] && ids[1] < ids[2]);
    assert.equal(s.count, 3);
    const page = s.pending(0, 2);
    assert.deepEqual(page.map((e) => e.payload.toString()), ['{"i":1}', '{"i":2}']);
    assert.equal(page[0].topic, 'HyperVolt/sensors/room/ldr');
    assert.equal(page[0].receivedAt, 1001);
    assert.deepEqual(s.pending(page[1].id, 2).map((e) => e.id), [ids[2]]);
    assert.equal(s.remove([ids[0], 999999]), 1);
    assert.equal(s.count, 2);
    // Runs of consecutive ids go as range deletes: exactly the listed ids leave, in any order, twice or not.
    const more = s.appendNow(Array.from({ length: 12 }, (_, i) => entry(10 + i)));
    const gone = [more[5], more[0], more[1], more[2], more[2], more[7], more[8], more[11], 999998];
    assert.equal(s.remove(gone), 7);
    assert.equal(s.count, 2 + 12 - 7);
    assert.deepEqual(
      s.pending(ids[2]).map((e) => e.id),
      [more[3], more[4], more[6], more[9], more[10]],
    );
    assert.equal(s.remove(more), 5);
    assert.equal(s.count, 2);
    s.close();
    const again = new Spool(file);
    assert.equal(again.count, 2, 'the count survives a reopen');
    assert.deepEqual(again.pending().map((e) => e.id), [ids[1], ids[2]]);
    again.close();
  });

  it('uses WAL; commits run with SQLite NORMAL, and FULL (the default) adds a WAL sync before whenDurable', async () => {
    const s = new Spool(file);
    const db = new (require('better-sqlite3'))(file);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    db.close();
    // The pragma is per connection: check it through the spool's own connection.
    assert.equal((s as unknown as { db: { pragma(s: string, o: object): unknown } }).db.pragma('synchronous', { simple: true }), 1);
    s.close();
    await withFdatasyncSpy(async (calls) => {
      const normal = new Spool(file, { synchronous: 'NORMAL' });
      await normal.append(entry(1));
      await normal.whenDurable();
      assert.equal(calls.length, 0, 'NORMAL: no sync of its own');
      normal.close();
    });
  });

  it('FULL: append resolves at the commit, whenDurable after an fdatasync of the WAL file; one sync covers the commits before it', async () => {
    await withFdatasyncSpy(async (calls) => {
      const s = new Spool(file);
      assert.equal(calls.length, 0);
      await s.whenDurable(); // nothing committed: nothing to wait for
      const id = await s.append(entry(1));
      assert.ok(id > 0, 'the entry has its id before it is on disk');
      assert.equal(calls.length, 0, 'the commit itself does not sync');
      let durable = false;
      const d1 = s.whenDurable().then(() => (durable = true));
      const d1again = s.whenDurable();
      assert.equal(calls.length, 1, 'one sync for both waiters');
      assert.equal(fs.fstatSync(calls[0].fd).ino, fs.statSync(`${file}-wal`).ino, 'the WAL file is synced');
      await tick();
      assert.equal(durable, false, 'not before the sync returned');
      // A commit made while that sync runs waits for the next one, which starts when it returns.
      await s.append(entry(2));
      const d2 = s.whenDurable();
      assert.equal(calls.length, 1);
      calls[0].finish(null);
      await Promise.all([d1, d1again]);
      assert.equal(durable, true);
      assert.equal(calls.length, 2, 'the next sync started');
      calls[1].finish(null);
      await d2;
      await s.whenDurable(); // all durable: at once
      assert.equal(calls.length, 2);
      s.close();
    });
  });

  it('FULL: a failed sync rejects its waiters (not acknowledged); close syncs what is still waited for', async () => {
    await withFdatasyncSpy(async (calls) => {
      const s = new Spool(file);
      await s.append(entry(1));
      const failed = s.whenDurable();
      calls[0].finish(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
      await assert.rejects(failed, /EIO/);
      const retried = s.whenDurable();
      assert.equal(calls.length, 2, 'the next waiter syncs again');
      await s.append(entry(2));
      const last = s.whenDurable();
      s.close(); // while a sync runs and another is due: both settled by close's own sync
      await Promise.all([retried, last]);
      calls[1].finish(null); // the running one returns late: its fd is closed then, nothing breaks
      const again = new Spool(file);
      assert.equal(again.count, 2);
      again.close();
    });
  });

  it('group commit: everything appended in one tick is one transaction', async () => {
    const s = new Spool(file);
    const before = s.commits;
    const ids = await Promise.all([1, 2, 3, 4, 5].map((i) => s.append(entry(i))));
    assert.equal(s.commits - before, 1, 'one transaction for the five');
    assert.deepEqual([...ids].sort((a, b) => a - b), ids, 'ids in arrival order');
    await s.append(entry(6));
    assert.equal(s.commits - before, 2, 'a later tick is another transaction');
    assert.equal(s.count, 6);
    s.close();
  });

  it('rejects appends after close and ignores late removals (they are replayed instead)', async () => {
    const s = new Spool(file);
    const id = s.appendNow([entry(1)])[0];
    s.close();
    await assert.rejects(s.append(entry(2)), SpoolClosedError);
    s.removeSoon(id);
    const again = new Spool(file);
    assert.equal(again.count, 1);
    again.close();
  });

  it('removeSoon and deadLetterSoon are written together in the next tick; close flushes them', async () => {
    const s = new Spool(file);
    const [a, b] = s.appendNow([entry(1), entry(2)]);
    s.deadLetterSoon({ topic: 't', payload: '{"bad":1}', reason: 'INVALID_JSON: payload is not JSON' });
    s.removeSoon(a);
    assert.equal(s.count, 2, 'not yet');
    await tick();
    assert.equal(s.count, 1);
    const letters = s.deadLetters();
    assert.equal(letters.length, 1);
    assert.equal(letters[0].reason, 'INVALID_JSON: payload is not JSON');
    assert.equal(Buffer.from(letters[0].payload).toString(), '{"bad":1}');
    s.removeSoon(b);
    s.close(); // flushes the pending removal
    const again = new Spool(file);
    assert.equal(again.count, 0);
    assert.equal(again.deadLetterCount(), 1);
    again.close();
  });

  it('measures appends per second (one message per transaction and grouped)', async function () {
    this.timeout(60_000);
    for (const sync of ['FULL', 'NORMAL'] as const) {
      const f = path.join(dir, `bench-${sync}.db`);
      const s = new Spool(f, { synchronous: sync });
      const n = 1000;
      let t0 = process.hrtime.bigint();
      // Durable appends (the commit, then the WAL sync with FULL), as sensor-in waits for them.
      const durable = async (i: number) => {
        await s.append(entry(i));
        await s.whenDurable();
      };
      for (let i = 0; i < n; i++) await durable(i); // one per tick: one sync each
      const single = n / (Number(process.hrtime.bigint() - t0) / 1e9);
      t0 = process.hrtime.bigint();
      for (let k = 0; k < 100; k++) await Promise.all(Array.from({ length: 100 }, (_, i) => durable(i)));
      const grouped = 10_000 / (Number(process.hrtime.bigint() - t0) / 1e9);
      // eslint-disable-next-line no-console
      console.log(`      spool ${sync}: ${Math.round(single)} appends/s one per transaction, ${Math.round(grouped)} appends/s in groups of 100`);
      assert.ok(grouped > single, 'grouping is faster');
      s.close();
    }
  });
});

describe('CompletionTracker', () => {
  class Sink {
    removed: number[] = [];
    letters: { topic: string; payload: Buffer | string; reason: string }[] = [];
    removeSoon(id: number) {
      this.removed.push(id);
    }
    deadLetterSoon(l: { topic: string; payload: Buffer | string; reason: string }) {
      this.letters.push(l);
    }
  }
  const ref = (sink: Sink, id: number) => ({ sink, id, topic: 'HyperVolt/sensors/a/ldr', payload: Buffer.from('raw') });

  it('waits for held work (the hot-window push) as well as for the stored readings', () => {
    const t = new CompletionTracker();
    const sink = new Sink();
    t.track('m1', ref(sink, 7));
    t.hold('m1');
    t.expect('m1', 2);
    t.stored('m1', 2);
    assert.deepEqual(sink.removed, [], 'stored, but the push is still running');
    t.release('m1');
    assert.deepEqual(sink.removed, [7]);
    t.track('m2', ref(sink, 8));
    t.hold('m2');
    t.release('m2');
    t.release('m2'); // an extra release is ignored
    t.hold('unknown');
    t.release('unknown'); // untracked msgids cost nothing
    assert.deepEqual(sink.removed, [7], 'm2 still waits for its readings');
    t.expect('m2', 1);
    t.stored('m2', 1);
    assert.deepEqual(sink.removed, [7, 8]);
    assert.equal(t.size, 0);
  });

  it('removes the entry once every accepted reading is stored, not before', () => {
    const t = new CompletionTracker();
    const sink = new Sink();
    t.track('m1', ref(sink, 7));
    t.stored('m1', 1); // before expect: never complete early
    assert.deepEqual(sink.removed, []);
    t.expect('m1', 3);
    assert.deepEqual(sink.removed, []);
    t.stored('m1', 1);
    assert.deepEqual(sink.removed, []);
    t.stored('m1', 1);
    assert.deepEqual(sink.removed, [7]);
    assert.equal(t.size, 0);
    t.stored('m1', 1); // late: nothing
    assert.deepEqual(sink.removed, [7]);
  });

  it('dead-letters rejected readings with their reason; none accepted completes at once', () => {
    const t = new CompletionTracker();
    const sink = new Sink();
    t.track('m', ref(sink, 1));
    t.expect('m', 0, [{ reason: 'INVALID_JSON: not JSON' }, { reason: 'OUT_OF_RANGE: value', reading: { value: -1 } }]);
    assert.deepEqual(sink.removed, [1]);
    assert.deepEqual(
      sink.letters.map((l) => [l.reason, l.payload.toString()]),
      [
        ['INVALID_JSON: not JSON', 'raw'],
        ['OUT_OF_RANGE: value', '{"value":-1}'],
      ],
    );
  });

  it('a poison reading is dead-lettered with the database error and completes the entry', () => {
    const t = new CompletionTracker();
    const sink = new Sink();
    t.track('m', ref(sink, 3));
    t.expect('m', 2);
    t.stored('m', 1);
    t.failed('m', [{ sensor_id: 'x\u0000' }], 'invalid byte sequence for encoding "UTF8": 0x00');
    assert.deepEqual(sink.removed, [3]);
    assert.match(sink.letters[0].reason, /0x00/);
  });

  it('a batch (several entries, maybe of several spools) is removed together, its rejects dead-lettered with their own entry', () => {
    const t = new CompletionTracker();
    const own = new Sink();
    const adopted = new Sink();
    const at = (sink: Sink, id: number, topic: string) => ({ sink, id, topic, payload: Buffer.from(`raw${id}`) });
    t.track('b', [at(own, 1, 'HyperVolt/sensors/hall/ldr'), at(adopted, 2, 'HyperVolt/sensors/attic/temperature'), at(own, 3, 'HyperVolt/sensors/hall/power')]);
    t.expect('b', 3, [{ reason: 'INVALID_JSON: not JSON', entry: 1 }, { reason: 'OUT_OF_RANGE: value', reading: { value: -1 }, entry: 2 }]);
    assert.deepEqual(
      [...own.letters, ...adopted.letters].map((l) => [l.topic, l.payload.toString(), l.reason]),
      [
        ['HyperVolt/sensors/hall/power', '{"value":-1}', 'OUT_OF_RANGE: value'],
        ['HyperVolt/sensors/attic/temperature', 'raw2', 'INVALID_JSON: not JSON'],
      ],
    );
    t.stored('b', 2);
    assert.deepEqual([own.removed, adopted.removed], [[], []], 'one reading still to store');
    // A poison row of the batch: dead-lettered under the topic of the entry it came from.
    t.failed('b', [{ sensor_type: 'temperature', location: 'attic', sensor_id: 'x\u0000' }], 'invalid byte sequence');
    assert.equal(adopted.letters[1].topic, 'HyperVolt/sensors/attic/temperature');
    assert.deepEqual([own.removed, adopted.removed], [[1, 3], [2]]);
    assert.equal(t.size, 0);
    // forgetSink drops a batch holding any entry of that spool (the rest is replayed: stored once).
    t.track('c', [at(own, 4, 'HyperVolt/sensors/hall/ldr'), at(adopted, 5, 'HyperVolt/sensors/attic/ldr')]);
    t.forgetSink(adopted);
    assert.equal(t.size, 0);
  });

  it('untracked msgids are ignored; forget and forgetSink leave the entry in the spool', () => {
    const t = new CompletionTracker();
    const sink = new Sink();
    t.expect('nope', 1);
    t.stored(undefined, 1);
    t.failed('nope', [], 'x');
    t.track('a', ref(sink, 1));
    t.track('b', ref(sink, 2));
    t.forget('a');
    t.forgetSink(sink);
    assert.equal(t.size, 0);
    assert.deepEqual(sink.removed, []);
  });
});

describe('ReadingBatcher bisect on permanent errors', () => {
  it('isolates one poison message among 16 in about 2·log2(16) flushes and marks its error permanent', async () => {
    const clock = new ManualClock();
    const timers = new ManualTimers(clock);
    let flushes = 0;
    const b = new ReadingBatcher<number, number>({
      clock,
      timers,
      isRetryable: () => false,
      flush: async (items) => {
        flushes++;
        if (items.includes(13)) throw new Error('poison');
        return items;
      },
    });
    const results: Array<[number, Error | null]> = [];
    for (let i = 0; i < 16; i++) b.add([i], (err) => results.push([i, err]));
    await timers.advance(100);
    for (let k = 0; k < 50 && results.length < 16; k++) await timers.advance(1);
    assert.equal(results.length, 16);
    const failed = results.filter(([, e]) => e !== null);
    assert.deepEqual(failed.map(([i]) => i), [13]);
    assert.ok(isPermanentFailure(failed[0][1]));
    assert.ok(flushes <= 9, `bisect took ${flushes} flushes (one at a time would take 17)`);
    await b.close();
  });
});
