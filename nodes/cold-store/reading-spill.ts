/**
 * The cold store's spill file: validated readings kept in a local SQLite file (WAL) while the
 * database cannot take them, so that memory stays bounded and the messages they came from can be
 * settled (their spool entries released) during an outage instead of holding up the ingest path.
 * Free of Node-RED. The file is created on the first spill, not before.
 *
 * Appends are grouped like the spool's: every reading spilled in the same tick goes into one
 * transaction (one fsync with `synchronous = FULL`, the default), then their promises resolve.
 */
import Database from 'better-sqlite3';
import fs from 'fs';
import path from 'path';
import type { Reading } from '../shared/types';

export interface SpilledReading {
  id: number;
  reading: Reading;
}

export interface ReadingSpillOptions {
  synchronous?: 'FULL' | 'NORMAL';
  /** Injected for tests; default setImmediate. */
  defer?: (fn: () => void) => void;
}

interface Waiter {
  readings: readonly Reading[];
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Row extends Reading {
  id: number;
}

export class ReadingSpill {
  readonly file: string;
  private db: Database.Database | null = null;
  private stmts: {
    insert: Database.Statement;
    remove: Database.Statement;
    page: Database.Statement;
    dead: Database.Statement;
  } | null = null;
  private readonly synchronous: 'FULL' | 'NORMAL';
  private readonly defer: (fn: () => void) => void;
  private waiting: Waiter[] = [];
  private scheduled = false;
  private closed = false;
  private rows = 0;
  /** Readings ever spilled, removed after being stored, and dead-lettered (for the status and metrics). */
  spilled = 0;
  drained = 0;
  deadLettered = 0;

  constructor(file: string, opts: ReadingSpillOptions = {}) {
    this.file = path.resolve(file);
    this.synchronous = opts.synchronous === 'NORMAL' ? 'NORMAL' : 'FULL';
    this.defer = opts.defer ?? ((fn) => setImmediate(fn));
    // A file left by an earlier run (the database was down when it stopped) is drained from the start.
    if (fs.existsSync(this.file)) this.open();
  }

  /** Readings in the file, waiting for the database. */
  get count(): number {
    return this.rows;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Resolves once the readings are committed to the file (grouped with the others of this tick). */
  append(readings: readonly Reading[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('spill file is closed'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ readings, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      this.defer(() => {
        this.scheduled = false;
        this.commit();
      });
    });
  }

  /** The oldest readings after `afterId`, at most `limit` (not removed: see `remove`). */
  page(afterId: number, limit: number): SpilledReading[] {
    if (this.closed || !this.stmts || this.rows === 0) return [];
    return (this.stmts.page.all(afterId, limit) as Row[]).map((r) => ({
      id: r.id,
      reading: { sensor_type: r.sensor_type, sensor_id: r.sensor_id, value: r.value, unit: r.unit, location: r.location, timestamp: r.timestamp },
    }));
  }

  /** Removes stored readings and records refused ones (reason from the database), in one transaction. */
  settle(storedIds: readonly number[], refused: ReadonlyArray<{ id: number; reading: Reading; reason: string }> = []): void {
    if (this.closed || !this.db || !this.stmts || (storedIds.length === 0 && refused.length === 0)) return;
    const { remove, dead } = this.stmts;
    let removed = 0;
    this.db.transaction(() => {
      const now = Date.now();
      for (const r of refused) {
        dead.run(JSON.stringify(r.reading), r.reason, now);
        removed += remove.run(r.id).changes;
      }
      for (const id of storedIds) removed += remove.run(id).changes;
    })();
    this.rows -= removed;
    this.drained += storedIds.length;
    this.deadLettered += refused.length;
  }

  /** Dead letters recorded here (readings the database refused for good after an outage). */
  deadLetters(limit = 1000): Array<{ reading: string; reason: string; at: number }> {
    if (!this.db) return [];
    return this.db.prepare('SELECT reading, reason, at FROM dead_letters ORDER BY id LIMIT ?').all(limit) as Array<{ reading: string; reason: string; at: number }>;
  }

  /** Commits what is waiting, then closes the file (what it holds is drained on the next start). */
  close(): void {
    if (this.closed) return;
    this.commit();
    this.closed = true;
    this.db?.close();
    this.db = null;
  }

  private open(): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const db = new Database(this.file);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${this.synchronous}`);
    db.exec(`
      CREATE TABLE IF NOT EXISTS spilled_readings (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sensor_type TEXT NOT NULL,
        sensor_id TEXT NOT NULL,
        value REAL NOT NULL,
        unit TEXT NOT NULL,
        location TEXT NOT NULL,
        timestamp TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        reading TEXT NOT NULL,
        reason TEXT NOT NULL,
        at INTEGER NOT NULL
      );`);
    this.stmts = {
      insert: db.prepare('INSERT INTO spilled_readings (sensor_type, sensor_id, value, unit, location, timestamp) VALUES (?, ?, ?, ?, ?, ?)'),
      remove: db.prepare('DELETE FROM spilled_readings WHERE id = ?'),
      page: db.prepare('SELECT id, sensor_type, sensor_id, value, unit, location, timestamp FROM spilled_readings WHERE id > ? ORDER BY id LIMIT ?'),
      dead: db.prepare('INSERT INTO dead_letters (reading, reason, at) VALUES (?, ?, ?)'),
    };
    this.rows = (db.prepare('SELECT COUNT(*) AS n FROM spilled_readings').get() as { n: number }).n;
    this.db = db;
  }

  private commit(): void {
    const waiting = this.waiting;
    this.waiting = [];
    if (waiting.length === 0 || this.closed) return;
    let added = 0;
    try {
      if (!this.db) this.open();
      const db = this.db as Database.Database;
      const insert = this.stmts!.insert;
      db.transaction(() => {
        for (const w of waiting) {
          for (const r of w.readings) {
            insert.run(r.sensor_type, r.sensor_id, r.value, r.unit, r.location, r.timestamp);
            added++;
          }
        }
      })();
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      for (const w of waiting) w.reject(e);
      return;
    }
    this.rows += added;
    this.spilled += added;
    for (const w of waiting) w.resolve();
  }
}
