/**
 * The cold store's spill file and the writer that uses it: memory first, the file while the
 * database is down or hung, a counted refusal past both; the file drained when it is back, a
 * poison reading isolated and dead-lettered. Real SQLite files in a temporary directory, a fake
 * database (the flush function) that can be up, down, hung or refuse one reading.
 */
import assert from 'assert/strict';
import fs from 'fs';
import os from 'os';
import path from 'path';
import Database from 'better-sqlite3';
import { QueueFullError, ReadingBatcher } from '../../nodes/cold-store/reading-batcher';
import { ReadingSpill } from '../../nodes/cold-store/reading-spill';
import { SpillingWriter } from '../../nodes/cold-store/spilling-writer';
import type { Reading } from '../../nodes/shared/types';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function reading(i: number, id = 's1'): Reading {
  return {
    sensor_type: 'temperature',
    sensor_id: id,
    value: 20 + (i % 10) / 10,
    unit: 'celsius',
    location: 'room',
    timestamp: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
  };
}

const key = (r: Reading) => `${r.sensor_type}|${r.sensor_id}|${r.timestamp}`;

class PermanentError extends Error {}

/** The database: `up`, `down` (rejects at once), `hung` (answers nothing until `up` again); refuses `poison` ids. */
class FakeDatabase {
  mode: 'up' | 'down' | 'hung' = 'up';
  poison = new Set<string>();
  readonly rows = new Map<string, Reading>();
  private parked: Array<() => void> = [];
  flushes = 0;
  readonly flush = async (items: Reading[]): Promise<Array<Reading | null>> => {
    this.flushes++;
    if (this.mode === 'hung') await new Promise<void>((r) => this.parked.push(r));
    if (this.mode === 'down') throw new Error('connect ECONNREFUSED');
    const bad = items.find((r) => this.poison.has(r.sensor_id));
    if (bad) throw new PermanentError(`invalid byte sequence in ${bad.sensor_id}`);
    for (const r of items) this.rows.set(key(r), r);
    return items;
  };
  set(mode: 'up' | 'down' | 'hung'): void {
    this.mode = mode;
    if (mode !== 'hung') {
      const parked = this.parked;
      this.parked = [];
      for (const go of parked) go();
    }
  }
}

describe('cold store spill file (reading-spill.ts, spilling-writer.ts)', () => {
  let dir: string;
  const open: Array<SpillingWriter<Reading | null> | ReadingSpill> = [];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-spill-'));
  });
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function writer(db: FakeDatabase, opts: { spillAfter?: number; maxSpilled?: number; maxQueued?: number; spill?: ReadingSpill | null } = {}) {
    const batcher = new ReadingBatcher<Reading, Reading | null>({
      flush: db.flush,
      flushWhenIdle: true,
      maxDelayMs: 1,
      retryBaseMs: 5,
      retryMaxMs: 20,
      closeTimeoutMs: 200,
      maxQueued: opts.maxQueued ?? 100_000,
      isRetryable: (err) => !(err instanceof PermanentError),
    });
    const spill = opts.spill === undefined ? new ReadingSpill(path.join(dir, 'spill.db')) : opts.spill;
    const drained: number[] = [];
    const w = new SpillingWriter({ batcher, spill, spillAfter: opts.spillAfter ?? 100, maxSpilled: opts.maxSpilled, stalledAfterMs: 50, drainEveryMs: 10, pageSize: 50, onDrained: (n) => drained.push(n) });
    open.push(w);
    return { w, drained };
  }

  /** Adds each reading as its own message; resolves the outcomes once all callbacks came. */
  function addAll(w: SpillingWriter<Reading | null>, readings: Reading[]) {
    const outcomes: Array<{ err: Error | null; spilled: boolean }> = [];
    const all = Promise.all(
      readings.map(
        (r) =>
          new Promise<void>((resolve) =>
            w.add([r], (err, _rows, spilled) => {
              outcomes.push({ err, spilled: spilled === true });
              resolve();
            }),
          ),
      ),
    );
    return { outcomes, all };
  }

  it('the spill file is created on the first spill only, commits a tick in one transaction, pages and settles', async () => {
    const file = path.join(dir, 'lazy.db');
    const spill = new ReadingSpill(file);
    open.push(spill);
    assert.equal(fs.existsSync(file), false, 'no file before a spill');
    await Promise.all([spill.append([reading(1), reading(2)]), spill.append([reading(3)])]);
    assert.equal(fs.existsSync(file), true);
    assert.equal(spill.count, 3);
    const page = spill.page(0, 2);
    assert.deepEqual(page.map((p) => p.reading), [reading(1), reading(2)]);
    spill.settle([page[0].id], [{ id: page[1].id, reading: page[1].reading, reason: 'refused' }]);
    assert.equal(spill.count, 1);
    assert.deepEqual(spill.page(0, 10).map((p) => p.reading), [reading(3)]);
    assert.deepEqual(spill.deadLetters().map((d) => [JSON.parse(d.reading), d.reason]), [[reading(2), 'refused']]);
    spill.close();
    const again = new ReadingSpill(file);
    open.push(again);
    assert.equal(again.count, 1, 'what was left is there after a reopen');
  });

  it('with the database up nothing is spilled', async () => {
    const db = new FakeDatabase();
    const { w } = writer(db, { spillAfter: 10 });
    const { outcomes, all } = addAll(w, Array.from({ length: 500 }, (_, i) => reading(i)));
    await all;
    assert.equal(outcomes.filter((o) => o.spilled).length, 0);
    assert.equal(db.rows.size, 500);
    assert.equal(fs.existsSync(path.join(dir, 'spill.db')), false);
  });

  it('database down: spillAfter readings wait in memory, the rest are committed to the file at once; all are stored after it is back', async () => {
    const db = new FakeDatabase();
    const { w, drained } = writer(db, { spillAfter: 100 });
    db.set('down');
    const first = addAll(w, [reading(0)]); // the failing flush that tells the writer
    await until('the outage is noticed', () => db.flushes > 0 && w.batcher.isDown(50));
    const rest = addAll(w, Array.from({ length: 999 }, (_, i) => reading(i + 1)));
    await until('every reading beyond memory spilled', () => rest.outcomes.length >= 999 - 99);
    assert.ok(w.batcher.pending <= 100, `memory bounded (${w.batcher.pending} waiting)`);
    assert.equal(w.spilled, 900, 'the rest in the file');
    assert.ok(rest.outcomes.every((o) => o.err === null && o.spilled), 'spilled messages complete without an error');
    db.set('up');
    await Promise.all([first.all, rest.all]);
    await until('the file drained', () => w.spilled === 0 && drained.length === 1, 10_000);
    assert.equal(db.rows.size, 1000, 'every reading stored once');
    assert.deepEqual(drained, [900]);
  });

  it('database hung (no answer, no error): after stalledAfterMs the writer spills', async () => {
    const db = new FakeDatabase();
    const { w } = writer(db, { spillAfter: 20 });
    db.set('hung');
    const first = addAll(w, [reading(0)]);
    await sleep(80); // the flush has been running longer than 50 ms
    const rest = addAll(w, Array.from({ length: 200 }, (_, i) => reading(i + 1)));
    await until('spilled', () => rest.outcomes.length >= 180);
    assert.ok(w.spilled >= 180);
    db.set('up');
    await Promise.all([first.all, rest.all]);
    await until('drained', () => w.spilled === 0 && db.rows.size === 201, 10_000);
  });

  it('a reading the database refuses for good is dead-lettered in the file with the error; the others are stored', async () => {
    const db = new FakeDatabase();
    const spill = new ReadingSpill(path.join(dir, 'poison.db'));
    const { w } = writer(db, { spillAfter: 5, spill });
    db.set('down');
    addAll(w, [reading(0)]);
    await until('down', () => w.batcher.isDown(50));
    const readings = Array.from({ length: 60 }, (_, i) => reading(i + 1, i === 30 ? 'bad' : 's1'));
    const rest = addAll(w, readings);
    await until('spilled', () => rest.outcomes.length >= 55);
    db.poison.add('bad');
    db.set('up');
    await until('drained', () => w.spilled === 0, 10_000);
    await rest.all;
    const dead = spill.deadLetters();
    assert.equal(dead.length, 1);
    assert.equal(JSON.parse(dead[0].reading).sensor_id, 'bad');
    assert.match(dead[0].reason, /invalid byte sequence in bad/);
    assert.equal(db.rows.size, 60, 'the 59 good spilled ones and the first one');
  });

  it('past maxSpilled the file takes no more: memory up to maxQueued, then a counted refusal', async () => {
    const db = new FakeDatabase();
    const { w } = writer(db, { spillAfter: 10, maxSpilled: 50, maxQueued: 30 });
    db.set('down');
    addAll(w, [reading(0)]);
    await until('down', () => w.batcher.isDown(50));
    const rest = addAll(w, Array.from({ length: 100 }, (_, i) => reading(i + 1)));
    await until('all answered but those in memory', () => rest.outcomes.length >= 100 - 29);
    const refused = rest.outcomes.filter((o) => o.err instanceof QueueFullError).length;
    assert.equal(w.spilled, 50);
    assert.equal(w.batcher.pending, 30);
    assert.equal(refused, 100 - 50 - 29, 'one in memory is the first reading');
    assert.equal(w.batcher.stats().refusedItems, refused, 'counted');
  });

  it('what the file holds when the writer closes is drained by the next one on the same file', async () => {
    const db = new FakeDatabase();
    const file = path.join(dir, 'restart.db');
    const a = writer(db, { spillAfter: 10, spill: new ReadingSpill(file) });
    db.set('down');
    addAll(a.w, [reading(0)]);
    await until('down', () => a.w.batcher.isDown(50));
    const rest = addAll(a.w, Array.from({ length: 100 }, (_, i) => reading(i + 1)));
    await until('spilled', () => rest.outcomes.length >= 91);
    assert.equal(a.w.batcher.pending, 10, 'the first and 9 more in memory');
    await a.w.close(); // the 10 in memory fail at the close deadline (the spool replays them)
    const check = new Database(file, { readonly: true });
    const rows = (check.prepare('SELECT COUNT(*) AS n FROM spilled_readings').get() as { n: number }).n;
    check.close();
    assert.equal(rows, 91);
    db.set('up');
    const b = writer(db, { spill: new ReadingSpill(file) });
    await until('drained after the restart', () => b.w.spilled === 0, 10_000);
    assert.equal(db.rows.size, 91);
  });
});
