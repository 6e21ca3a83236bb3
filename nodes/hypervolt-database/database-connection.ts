/**
 * The one database of a `hypervolt-database` config node, free of Node-RED: opens it with
 * `openDatabase` (migrations run), keeps retrying in the background with backoff while it
 * cannot (PostgreSQL down at start: no crash, users see "disconnected"), hands it to the nodes
 * that use it, and closes it once the last of them has let go (so their pending batches can
 * still be written during a stop).
 */
import type { Database } from '../shared/db';
import { systemTimers, type Timers } from '../shared/timers';
import { maskUrlsIn } from '../shared/redact';

export type DatabaseState = 'connecting' | 'up' | 'down' | 'closed';

/** The database cannot be used now (not open yet, retrying, or closed). */
export class DatabaseUnavailableError extends Error {
  readonly code = 'DB_UNAVAILABLE';
  constructor(message = 'database unavailable') {
    super(message);
    this.name = 'DatabaseUnavailableError';
  }
}

export interface ConnectionLogger {
  log(message: string): void;
  warn(message: string): void;
}

export interface DatabaseConnectionOptions {
  /** The URL as configured (may hold a password: never logged as is). */
  url: string;
  open: (url: string) => Promise<Database>;
  /** How the database is named in logs and status (password masked). */
  description?: string;
  logger?: ConnectionLogger;
  timers?: Timers;
  random?: () => number;
  /** First retry delay of a failed open, doubled per attempt. Default 500 ms. */
  retryBaseMs?: number;
  /** Default 10 s: the longest a recovered database stays unused. */
  retryMaxMs?: number;
  /** How long `getDatabase()` waits for a database still opening. Default 2000 ms. */
  waitMs?: number;
  /** How long `close()` waits for users to let go before closing anyway. Default 12 s. */
  releaseTimeoutMs?: number;
}


/** The password of `url`, or '' (for scrubbing it from driver messages). */
function passwordOf(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return '';
  }
}

/**
 * Adds a password kept as a Node-RED credential to a PostgreSQL URL that has none, so the flow
 * file need not hold it.
 */
export function withPassword(url: string, password: string | undefined): string {
  if (!password || !/^postgres(ql)?:\/\//i.test(url)) return url;
  try {
    const u = new URL(url);
    if (u.password || !u.username) return url;
    u.password = password;
    return u.toString();
  } catch {
    return url;
  }
}

/**
 * What a `hypervolt-database` config node offers the nodes that use it
 * (`RED.nodes.getNode(config.database)`).
 */
export interface DatabaseProvider {
  connection: DatabaseConnection;
  /** The open database; waits briefly while it opens, rejects with `DatabaseUnavailableError` otherwise. */
  getDatabase(waitMs?: number): Promise<Database>;
  readonly state: DatabaseState;
}

type Waiter = { resolve: (db: Database) => void; reject: (err: Error) => void; timer: unknown };

export class DatabaseConnection {
  private db: Database | null = null;
  private _state: DatabaseState = 'connecting';
  private _lastError: string | null = null;
  private attempt = 0;
  private started = false;
  private retryTimer: unknown = null;
  private waiters = new Set<Waiter>();
  private listeners = new Set<(state: DatabaseState) => void>();
  private users = new Set<string>();
  private release: (() => void) | null = null;
  private closePromise: Promise<void> | null = null;
  /** Set once the users have let go during close: from then on nothing is opened or handed out. */
  private finalClose = false;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly logger: ConnectionLogger;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly waitMs: number;
  private readonly releaseTimeoutMs: number;
  readonly description: string;

  constructor(private readonly opts: DatabaseConnectionOptions) {
    this.timers = opts.timers ?? systemTimers;
    this.random = opts.random ?? Math.random;
    this.logger = opts.logger ?? { log: () => {}, warn: () => {} };
    this.retryBaseMs = opts.retryBaseMs ?? 500;
    this.retryMaxMs = opts.retryMaxMs ?? 10_000;
    this.waitMs = opts.waitMs ?? 2000;
    this.releaseTimeoutMs = opts.releaseTimeoutMs ?? 12_000;
    this.description = opts.description ?? maskUrlsIn(opts.url || 'sqlite:data/hypervolt.db');
  }

  get state(): DatabaseState {
    return this._state;
  }

  /** The last open error (password removed), or null. */
  get lastError(): string | null {
    return this._lastError;
  }

  /** The open database, or undefined while connecting, retrying or closed. */
  current(): Database | undefined {
    return this.db ?? undefined;
  }

  /** Starts opening (idempotent). */
  start(): void {
    if (this.started || this.finalClose) return;
    this.started = true;
    void this.tryOpen();
  }

  /** A configuration that can never open (unknown URL scheme): down for good, no retries. */
  fail(message: string): void {
    this.started = true;
    this._lastError = this.scrub(message);
    this.logger.warn(`cannot open ${this.description}: ${this._lastError}`);
    this.setState('down');
  }

  /**
   * The open database. While the first attempt to open it runs, waits up to `waitMs` (default
   * the connection's) for it; after a failed attempt (retrying) or when closed, rejects at once
   * with `DatabaseUnavailableError`. Never waits for ever.
   */
  getDatabase(waitMs = this.waitMs): Promise<Database> {
    if (this.db) return Promise.resolve(this.db);
    if (this.finalClose) return Promise.reject(new DatabaseUnavailableError('database closed'));
    if (this._state === 'down' || waitMs <= 0) return Promise.reject(this.unavailable());
    return new Promise<Database>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: this.timers.setTimeout(() => {
          this.waiters.delete(waiter);
          reject(this.unavailable());
        }, waitMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Calls `listener` on every state change; returns a function that removes it. */
  onState(listener: (state: DatabaseState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A node that uses the database: `close()` waits for it to `deregister` before closing. */
  register(userId: string): void {
    this.users.add(userId);
  }

  deregister(userId: string): void {
    this.users.delete(userId);
    if (this.users.size === 0 && this.release) this.release();
  }

  /**
   * Waits (at most `releaseTimeoutMs`) until every user has deregistered, then stops retrying
   * and closes the pool or file. Until then the database is still opened and handed out, so the
   * users can write what they have queued. Idempotent.
   */
  close(): Promise<void> {
    if (this.closePromise) return this.closePromise;
    this.closePromise = (async () => {
      if (this.users.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = this.timers.setTimeout(() => {
            this.logger.warn(`closing ${this.description} while ${this.users.size} node(s) still use it`);
            resolve();
          }, this.releaseTimeoutMs);
          this.release = () => {
            this.timers.clearTimeout(timer);
            resolve();
          };
        });
      }
      this.finalClose = true;
      if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
      this.retryTimer = null;
      const db = this.db;
      this.db = null;
      this.setState('closed');
      for (const w of this.waiters) {
        this.timers.clearTimeout(w.timer);
        w.reject(new DatabaseUnavailableError('database closed'));
      }
      this.waiters.clear();
      if (db) {
        try {
          await db.close();
        } catch (err) {
          this.logger.warn(`closing ${this.description} failed: ${this.scrub(err)}`);
        }
      }
    })();
    return this.closePromise;
  }

  private async tryOpen(): Promise<void> {
    this.retryTimer = null;
    this.attempt++;
    let db: Database;
    try {
      db = await this.opts.open(this.opts.url);
    } catch (err) {
      if (this.finalClose) return;
      const message = this.scrub(err);
      const delay = this.backoff(this.attempt);
      // Log the first failure and each new reason, not every attempt.
      if (message !== this._lastError) {
        this.logger.warn(`cannot open ${this.description}: ${message}; retrying in the background`);
      }
      this._lastError = message;
      this.setState('down');
      this.retryTimer = this.timers.setTimeout(() => void this.tryOpen(), delay);
      return;
    }
    if (this.finalClose) {
      // Closed while opening: nobody will use it.
      await db.close().catch(() => undefined);
      return;
    }
    this.db = db;
    this._lastError = null;
    this.logger.log(
      `connected to ${db.description || this.description}` + (this.attempt > 1 ? ` after ${this.attempt} attempts` : ''),
    );
    this.setState('up');
    for (const w of this.waiters) {
      this.timers.clearTimeout(w.timer);
      w.resolve(db);
    }
    this.waiters.clear();
  }

  private backoff(attempt: number): number {
    const capped = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(attempt - 1, 30));
    return Math.round(capped * (0.8 + 0.2 * this.random()));
  }

  private unavailable(): DatabaseUnavailableError {
    return new DatabaseUnavailableError(
      this._lastError ? `database unavailable: ${this._lastError}` : 'database unavailable',
    );
  }

  /** An error's message with the URL's password removed, however the driver quoted it. */
  scrub(err: unknown): string {
    let message = err instanceof Error ? err.message : String(err);
    const password = passwordOf(this.opts.url);
    // Very short passwords would mangle ordinary words; URL forms are masked below anyway.
    if (password.length >= 4) message = message.split(password).join('***');
    return maskUrlsIn(message);
  }

  private setState(state: DatabaseState): void {
    if (state === this._state) return;
    this._state = state;
    for (const l of this.listeners) {
      try {
        l(state);
      } catch {
        // A user's listener must not break the connection.
      }
    }
  }
}
