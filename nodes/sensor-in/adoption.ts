/**
 * Adoption of a dead group member's MQTT session, free of Node-RED (clock, timers, Redis and the
 * MQTT/spool side are injected).
 *
 * Why: Mosquitto (2.0) keeps giving a disconnected member of a shared subscription its share of
 * the messages, queued in that member's persistent session, until the session expires, and then
 * drops them. So when an instance dies, a survivor takes the dead one's session over:
 *
 * - Membership: every member heartbeats `{prefix}members:{group}:{clientId}` (PX ttl, renewed every
 *   ttl/3) and records itself (host, spool file) in the hash `{prefix}members:{group}`.
 * - Detection, one adopter: a recorded member whose heartbeat expired is dead; the survivor that
 *   wins its lock `{prefix}adopt:{group}:{clientId}` (SET NX PX, renewed while it works) adopts it.
 * - Adoption (SessionAdoption): connect with the DEAD client id, clean start off, into the
 *   adopter's own spool and flow (acknowledged only after the adopter's spool commit); unsubscribe
 *   the shared filter at once (new messages go to live members; what the session queued is
 *   delivered all the same); once idle, DISCONNECT with session expiry 0 (the broker deletes the
 *   session). Then the dead member's spool, if its file is here: replayed into the flow with that
 *   spool as the completion sink, closed once drained. Then the member is forgotten.
 * - The owner comes back: its CONNECT takes the session over, the broker closes the adopter's
 *   connection, which does not reconnect: the adoption ends quietly ('interrupted') and its lock
 *   just expires. A restarting owner also waits (bounded) while its own adoption runs, so its spool
 *   is not replayed by two processes at once.
 */
import fs from 'fs';
import path from 'path';
import { systemClock, type Clock } from '../shared/clock';
import type { SpoolEntry, SpoolSink } from '../shared/spool/spool';
import { systemTimers, type Timers } from '../shared/timers';

/** What the group knows of a member: enough to adopt it. */
export interface MemberInfo {
  clientId: string;
  /** os.hostname() of its machine. */
  host: string;
  /** Absolute path of its spool file. */
  spool: string;
}

export interface MembershipStore {
  /** Marks `me` alive for `ttlMs` and records it among the group's members. */
  heartbeat(me: MemberInfo, ttlMs: number): Promise<void>;
  /** Every recorded member, with whether its heartbeat is alive. */
  members(): Promise<Array<MemberInfo & { alive: boolean }>>;
  /** Takes the adoption lock of a member for `token` (only if free). */
  lock(clientId: string, token: string, ttlMs: number): Promise<boolean>;
  /** Extends the lock while `token` holds it; false when it does not (any more). */
  renew(clientId: string, token: string, ttlMs: number): Promise<boolean>;
  /** Releases the lock if `token` holds it. */
  unlock(clientId: string, token: string): Promise<void>;
  /** Whether anyone holds the adoption lock of `clientId`. */
  locked(clientId: string): Promise<boolean>;
  /** Removes a member from the group unless its heartbeat is alive again; whether it did. */
  forget(clientId: string): Promise<boolean>;
}

/** `$share/{group}/{filter}` → group and filter; a plain filter → null. */
export function shareGroupOf(topic: string): { group: string; filter: string } | null {
  const m = /^\$share\/([^/+#]+)\/(.+)$/.exec(topic);
  return m ? { group: m[1], filter: m[2] } : null;
}

/**
 * The dead member's spool file, if this instance can use it: recorded, not our own file (instances
 * on several machines or containers often have the same DATA_DIR path, each its own file), present
 * and writable here (the same machine, or a volume both mount). Otherwise why not: its entries
 * then wait for the member's restart with its DATA_DIR.
 */
export function orphanSpoolFile(member: MemberInfo, ownSpool: string): { file: string } | { skipped: string } {
  if (!member.spool) return { skipped: 'no spool file recorded' };
  const file = path.resolve(member.spool);
  const real = (p: string) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  if (file === path.resolve(ownSpool) || real(file) === real(ownSpool)) {
    return { skipped: `its spool ${file} is at this instance's own spool path (not the same file, or not shared)` };
  }
  try {
    fs.accessSync(file, fs.constants.R_OK | fs.constants.W_OK);
  } catch (err) {
    return { skipped: `its spool ${file} (host ${member.host || '?'}) cannot be used here: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  return { file };
}

/** What SessionAdoption needs of a subscriber on the dead client id (DurableSubscriber has it). */
export interface AdoptedSession {
  /** Messages taken (spooled and acknowledged, or on their way) so far. */
  readonly received: number;
  /** Appends not yet committed, or messages held unacknowledged. */
  readonly busy: boolean;
  readonly connected: boolean;
  /** Its one connection is gone (no reconnect): e.g. the owner took its session back. */
  readonly ended: boolean;
  /** Whether the broker still had the session (null before the CONNACK). */
  readonly sessionPresent: boolean | null;
  start(): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
  close(opts?: { deleteSession?: boolean }): Promise<void>;
}

/** The dead member's spool, opened here. */
export interface OrphanSpool extends SpoolSink {
  readonly count: number;
  pending(afterId: number, limit: number): SpoolEntry[];
  close(): void;
}

export interface AdoptionIO {
  /** A subscriber on `clientId`: the adopter's spool and flow, no replay, no SUBSCRIBE, no reconnect. */
  openSession(clientId: string): AdoptedSession;
  /** The member's spool if its file can be opened here (and is not ours), else why not. */
  openSpool(member: MemberInfo): { spool: OrphanSpool } | { skipped: string };
  /** Sends a replayed entry of `sink` into the flow (tracked with `sink` as its completion sink). */
  emit(entry: SpoolEntry, sink: SpoolSink): void;
  /** Stops tracking the entries of `sink` (about to be closed: they stay in its file). */
  forget(sink: SpoolSink): void;
}

export type AdoptionOutcome =
  /** The session is deleted at the broker (everything it held is ours), the spool handled. */
  | 'adopted'
  /** The connection ended before that (the owner is back, or the broker went away): left as it was. */
  | 'interrupted'
  /** stop() was called (the node closes): left as it was, for another adopter or the owner. */
  | 'stopped';

export interface AdoptionResult {
  outcome: AdoptionOutcome;
  clientId: string;
  /** Messages taken from the session. */
  fromSession: number;
  /** Entries of the dead member's spool sent into the flow (again on a second pass). */
  fromSpool: number;
  /** Entries left in its spool file (for its owner's restart); 0 when drained or not replayed. */
  spoolLeft: number;
  /** Why the spool was not replayed, when it was not. */
  spoolSkipped?: string;
  sessionPresent: boolean | null;
  ms: number;
  /** For 'interrupted': what happened. */
  reason?: string;
}

export interface SessionAdoptionOptions {
  io: AdoptionIO;
  clock?: Clock;
  timers?: Timers;
  /** The shared subscription the dead member had (`$share/{group}/...`): unsubscribed at once. */
  topic: string;
  /** No message for this long (and nothing held or uncommitted): the session is empty. Default 2000. */
  idleMs?: number;
  connectTimeoutMs?: number;
  pollMs?: number;
  /** The dead spool's count not going down for this long: another pass, or give up. Default 30 000. */
  stallMs?: number;
  /** Replay passes over the dead spool at most. Default 3. */
  maxPasses?: number;
  pageSize?: number;
}

/** One adoption: drain a dead member's session into our spool, delete it, replay its spool. */
export class SessionAdoption {
  private readonly clock: Clock;
  private readonly timers: Timers;
  private session?: AdoptedSession;
  private stopRequested = false;
  private wake?: () => void;
  fromSpool = 0;

  constructor(
    readonly member: MemberInfo,
    private readonly opts: SessionAdoptionOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.timers = opts.timers ?? systemTimers;
  }

  /** Messages taken so far, from the session and the spool. */
  get taken(): number {
    return (this.session?.received ?? 0) + this.fromSpool;
  }

  /** Ends the adoption soon (run() resolves 'stopped'), leaving what is left where it is. */
  stop(): void {
    this.stopRequested = true;
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const h = this.timers.setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        this.timers.clearTimeout(h);
        this.wake = undefined;
        resolve();
      };
    });
  }

  async run(): Promise<AdoptionResult> {
    const o = this.opts;
    const started = this.clock.now();
    const pollMs = o.pollMs ?? 200;
    const result = (outcome: AdoptionOutcome, extra: Partial<AdoptionResult> = {}): AdoptionResult => ({
      outcome,
      clientId: this.member.clientId,
      fromSession: this.session?.received ?? 0,
      fromSpool: this.fromSpool,
      spoolLeft: 0,
      sessionPresent: this.session?.sessionPresent ?? null,
      ms: this.clock.now() - started,
      ...extra,
    });

    // 1. The session: connect with the dead client id (the broker hands it over).
    const session = o.io.openSession(this.member.clientId);
    this.session = session;
    const leave = async (outcome: AdoptionOutcome, reason?: string) => {
      await session.close().catch(() => undefined);
      return result(outcome, reason ? { reason } : {});
    };
    try {
      await session.start();
    } catch (err) {
      return leave('interrupted', (err as Error).message);
    }
    const connectBy = this.clock.now() + (o.connectTimeoutMs ?? 10_000);
    while (!session.connected) {
      if (this.stopRequested) return leave('stopped');
      if (session.ended || this.clock.now() >= connectBy) return leave('interrupted', 'could not connect');
      await this.sleep(Math.min(50, pollMs));
    }
    // 2. New messages to live members only; what the session queued still comes.
    try {
      await session.unsubscribe(o.topic);
    } catch (err) {
      return leave('interrupted', `unsubscribe failed: ${(err as Error).message}`);
    }
    // 3. Take what comes until idle; the owner taking its session back ends the connection.
    const idleMs = o.idleMs ?? 2000;
    let seen = session.received;
    let lastActivity = this.clock.now();
    for (;;) {
      if (this.stopRequested) return leave('stopped');
      if (session.ended || !session.connected) return leave('interrupted', 'the connection was taken over or lost');
      const now = this.clock.now();
      if (session.received !== seen || session.busy) {
        seen = session.received;
        lastActivity = now;
      } else if (now - lastActivity >= idleMs) break;
      await this.sleep(pollMs);
    }
    // 4. Delete the session at the broker (what still arrives before the DISCONNECT is spooled).
    await session.close({ deleteSession: true });
    if (this.stopRequested) return result('stopped');

    // 5. The dead member's spool: what it had acknowledged but not stored.
    const opened = o.io.openSpool(this.member);
    if ('skipped' in opened) return result('adopted', { spoolSkipped: opened.skipped });
    return this.replaySpool(opened.spool, result);
  }

  private async replaySpool(
    spool: OrphanSpool,
    result: (outcome: AdoptionOutcome, extra?: Partial<AdoptionResult>) => AdoptionResult,
  ): Promise<AdoptionResult> {
    const o = this.opts;
    const io = o.io;
    const pollMs = o.pollMs ?? 200;
    const stallMs = o.stallMs ?? 30_000;
    const maxPasses = o.maxPasses ?? 3;
    const pageSize = o.pageSize ?? 500;
    const closeSpool = () => {
      io.forget(spool);
      const left = spool.count;
      try {
        spool.close();
      } catch {
        // closing a file that failed: its entries stay for the owner's restart
      }
      return left;
    };
    for (let pass = 1; ; pass++) {
      let after = 0;
      for (;;) {
        if (this.stopRequested) return result('stopped', { spoolLeft: closeSpool() });
        const page = spool.pending(after, pageSize);
        if (page.length === 0) break;
        for (const e of page) {
          this.fromSpool++;
          io.emit(e, spool);
        }
        after = page[page.length - 1].id;
        await this.sleep(0); // let the flow work between pages
      }
      // Removals come as readings are stored; wait for the count to reach 0.
      let last = spool.count;
      let progressAt = this.clock.now();
      while (spool.count > 0) {
        if (this.stopRequested) return result('stopped', { spoolLeft: closeSpool() });
        await this.sleep(pollMs);
        const now = this.clock.now();
        if (spool.count < last) {
          last = spool.count;
          progressAt = now;
        } else if (now - progressAt >= stallMs) break;
      }
      if (spool.count === 0) return result('adopted', { spoolLeft: closeSpool() });
      // Stalled (e.g. the database refused them for a while and they were given up): again.
      if (pass >= maxPasses) return result('adopted', { spoolLeft: closeSpool() });
      io.forget(spool);
    }
  }
}

/** What GroupMembership reports (the node turns it into log lines and a status). */
export type MembershipEvent =
  | { type: 'adopting'; member: MemberInfo }
  | { type: 'adopted'; result: AdoptionResult }
  | { type: 'waiting'; clientId: string }
  | { type: 'error'; error: Error }
  | { type: 'recovered' };

/** The part of SessionAdoption that GroupMembership drives (a fake in the unit tests). */
export interface Adoption {
  readonly member: MemberInfo;
  readonly taken: number;
  run(): Promise<AdoptionResult>;
  stop(): void;
}

export interface GroupMembershipOptions {
  store: MembershipStore;
  me: MemberInfo;
  /** Heartbeat expiry and adoption lock lifetime; renewed every third of it. */
  ttlMs: number;
  /** Identifies this instance as a lock holder (new at every start). */
  token: string;
  /** Starts (not yet runs) the adoption of a dead member. */
  adopt: (member: MemberInfo) => Adoption;
  onEvent?: (event: MembershipEvent) => void;
  clock?: Clock;
  timers?: Timers;
  /** How long a restarting member waits while a survivor adopts its session. Default 60 s. */
  maxWaitForOwnAdoptionMs?: number;
  /** At start, a store that does not answer within this is taken as down (ingest starts). Default 3 s. */
  startTimeoutMs?: number;
}

/**
 * This instance's membership of its group: heartbeat, detection of dead members, at most one
 * adoption at a time (a second dead member is adopted after the first, or by another survivor).
 */
export class GroupMembership {
  private readonly clock: Clock;
  private readonly timers: Timers;
  private timer: unknown;
  private closed = false;
  private current?: { adoption: Adoption; done: Promise<void> };
  private failing = false;
  private ticking?: Promise<void>;
  /**
   * No member is judged dead before this: one TTL after our start, and after Redis comes back
   * from an outage (every heartbeat expired meanwhile: the live members need a tick to renew).
   */
  private judgeAfter = 0;

  constructor(private readonly opts: GroupMembershipOptions) {
    this.clock = opts.clock ?? systemClock;
    this.timers = opts.timers ?? systemTimers;
  }

  /** The adoption in progress, for the status. */
  get adopting(): { clientId: string; taken: number } | null {
    const a = this.current?.adoption;
    return a ? { clientId: a.member.clientId, taken: a.taken } : null;
  }

  /**
   * Heartbeats at once and then every ttl/3; resolves once no survivor is adopting this member's
   * own session (a restart right after a death), at most `maxWaitForOwnAdoptionMs` later. Never
   * rejects: without Redis the instance runs alone, as without a group.
   */
  async start(): Promise<void> {
    const { store, me, ttlMs } = this.opts;
    this.judgeAfter = this.clock.now() + ttlMs;
    try {
      await this.bounded(store.heartbeat(me, ttlMs));
    } catch (err) {
      this.failed(err);
      this.schedule();
      return; // no Redis: nobody can be adopting us either
    }
    this.schedule();
    const until = this.clock.now() + (this.opts.maxWaitForOwnAdoptionMs ?? 60_000);
    let told = false;
    while (!this.closed && this.clock.now() < until) {
      let locked: boolean;
      try {
        locked = await this.bounded(store.locked(me.clientId));
      } catch {
        return;
      }
      if (!locked) return;
      if (!told) this.emit({ type: 'waiting', clientId: me.clientId });
      told = true;
      await new Promise<void>((r) => this.timers.setTimeout(r, 250));
    }
  }

  /** Stops heartbeating and scanning; stops an adoption in progress and releases its lock. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    await this.ticking?.catch(() => undefined);
    const current = this.current;
    if (current) {
      current.adoption.stop();
      await current.done;
    }
  }

  /** `p`, or a rejection once `startTimeoutMs` passed without an answer. */
  private bounded<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const h = this.timers.setTimeout(() => reject(new Error('Redis did not answer in time')), this.opts.startTimeoutMs ?? 3000);
      p.then(
        (v) => {
          this.timers.clearTimeout(h);
          resolve(v);
        },
        (e: unknown) => {
          this.timers.clearTimeout(h);
          reject(e);
        },
      );
    });
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
        this.schedule();
      });
    }, Math.max(50, Math.floor(this.opts.ttlMs / 3)));
  }

  /** One round: heartbeat; renew the lock of the adoption in progress, or look for dead members. */
  async tick(): Promise<void> {
    if (this.closed) return;
    const { store, ttlMs, token, me } = this.opts;
    try {
      await store.heartbeat(me, ttlMs);
      if (this.closed) return;
      const current = this.current;
      if (current) {
        // Lost (another took it after we stalled past the TTL): stop, without deleting anything.
        if (!(await store.renew(current.adoption.member.clientId, token, ttlMs))) current.adoption.stop();
      } else if (!this.failing && this.clock.now() >= this.judgeAfter) {
        const dead = (await store.members()).filter((m) => !m.alive && m.clientId !== me.clientId);
        for (const { clientId, host, spool } of dead) {
          if (this.closed || this.current) break;
          if (!(await store.lock(clientId, token, ttlMs))) continue;
          if (this.closed) await store.unlock(clientId, token);
          else this.begin({ clientId, host, spool });
        }
      }
    } catch (err) {
      this.failed(err);
      return;
    }
    if (this.failing) {
      this.failing = false;
      this.judgeAfter = this.clock.now() + ttlMs;
      this.emit({ type: 'recovered' });
    }
  }

  private begin(member: MemberInfo): void {
    const adoption = this.opts.adopt(member);
    const current = { adoption, done: Promise.resolve() };
    this.current = current;
    this.emit({ type: 'adopting', member });
    current.done = adoption.run().then(
      (result) => this.finish(result),
      (err: unknown) =>
        this.finish({
          outcome: 'interrupted', clientId: member.clientId, fromSession: 0, fromSpool: 0, spoolLeft: 0,
          sessionPresent: null, ms: 0, reason: err instanceof Error ? err.message : String(err),
        }),
    );
  }

  private async finish(result: AdoptionResult): Promise<void> {
    const { store, token } = this.opts;
    try {
      if (result.outcome === 'adopted') await store.forget(result.clientId);
      // Interrupted: the lock is left to expire, so the owner that is back heartbeats first.
      if (result.outcome !== 'interrupted') await store.unlock(result.clientId, token);
    } catch (err) {
      this.failed(err);
    }
    this.current = undefined;
    this.emit({ type: 'adopted', result });
  }

  /** Reported once per failure streak (a Redis outage is not a log line every few seconds). */
  private failed(err: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.emit({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
  }

  private emit(event: MembershipEvent): void {
    try {
      this.opts.onEvent?.(event);
    } catch {
      // a listener's bug must not stop the membership
    }
  }
}
