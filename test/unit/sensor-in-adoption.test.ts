/**
 * Adoption of a dead group member's session (nodes/sensor-in/adoption.ts) on fake time: detection
 * by heartbeat expiry, exactly one adopter among survivors, the owner's return (session takeover)
 * ending an adoption quietly, and the drain itself (idle, delete, spool replay) on a fake session.
 * The same logic on Redis and a real broker: test/integration/sensor-adoption.test.ts.
 */
import assert from 'assert/strict';
import fs from 'fs';
import os from 'os';
import path from 'path';
import {
  GroupMembership, SessionAdoption, orphanSpoolFile, shareGroupOf,
  type AdoptedSession, type Adoption, type AdoptionIO, type AdoptionResult, type MemberInfo, type MembershipEvent,
  type MembershipStore, type OrphanSpool,
} from '../../nodes/sensor-in/adoption';
import { memberTtlMs } from '../../nodes/sensor-in/group';
import { ManualClock } from '../../nodes/shared/clock';
import type { DeadLetter, SpoolEntry, SpoolSink } from '../../nodes/shared/spool/spool';
import { ManualTimers } from '../../nodes/shared/timers';

const TTL = 3000;

/** Redis semantics (PX expiry, SET NX, token-checked renew and delete) on the manual clock. */
class FakeMembershipStore implements MembershipStore {
  readonly beats = new Map<string, number>(); // client id → expires at
  readonly known = new Map<string, MemberInfo>();
  readonly locks = new Map<string, { token: string; until: number }>();
  down = false;
  /** Redis unreachable without an error (a black hole): calls never answer. */
  hang = false;
  constructor(private readonly clock: ManualClock) {}
  private check(): void {
    if (this.down) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
  }
  private lockOf(id: string) {
    const l = this.locks.get(id);
    return l && l.until > this.clock.now() ? l : undefined;
  }
  async heartbeat(me: MemberInfo, ttlMs: number): Promise<void> {
    if (this.hang) return new Promise(() => undefined);
    this.check();
    this.beats.set(me.clientId, this.clock.now() + ttlMs);
    this.known.set(me.clientId, { ...me });
  }
  async members() {
    this.check();
    return [...this.known.values()].map((m) => ({ ...m, alive: (this.beats.get(m.clientId) ?? 0) > this.clock.now() }));
  }
  async lock(id: string, token: string, ttlMs: number): Promise<boolean> {
    this.check();
    if (this.lockOf(id)) return false;
    this.locks.set(id, { token, until: this.clock.now() + ttlMs });
    return true;
  }
  async renew(id: string, token: string, ttlMs: number): Promise<boolean> {
    this.check();
    const l = this.lockOf(id);
    if (!l || l.token !== token) return false;
    l.until = this.clock.now() + ttlMs;
    return true;
  }
  async unlock(id: string, token: string): Promise<void> {
    this.check();
    if (this.lockOf(id)?.token === token) this.locks.delete(id);
  }
  async locked(id: string): Promise<boolean> {
    this.check();
    return this.lockOf(id) !== undefined;
  }
  async forget(id: string): Promise<boolean> {
    this.check();
    if ((this.beats.get(id) ?? 0) > this.clock.now()) return false;
    return this.known.delete(id);
  }
}

/** An adoption that runs until the test ends it. */
class FakeAdoption implements Adoption {
  taken = 0;
  stopped = false;
  private resolve!: (r: AdoptionResult) => void;
  private readonly result = new Promise<AdoptionResult>((r) => (this.resolve = r));
  constructor(readonly member: MemberInfo) {}
  run(): Promise<AdoptionResult> {
    return this.result;
  }
  stop(): void {
    this.stopped = true;
    this.end('stopped');
  }
  end(outcome: AdoptionResult['outcome']): void {
    this.resolve({ outcome, clientId: this.member.clientId, fromSession: this.taken, fromSpool: 0, spoolLeft: 0, sessionPresent: true, ms: 0 });
  }
}

const info = (clientId: string): MemberInfo => ({ clientId, host: `host-of-${clientId}`, spool: `/data/${clientId}/spool.db` });

describe('sensor-in adoption: group membership', () => {
  let clock: ManualClock;
  let timers: ManualTimers;
  let store: FakeMembershipStore;
  let members: GroupMembership[];
  let adoptions: FakeAdoption[];
  let events: Array<{ who: string; e: MembershipEvent }>;

  const join = (clientId: string) => {
    const m = new GroupMembership({
      store, me: info(clientId), ttlMs: TTL, token: `token-${clientId}`, clock, timers,
      adopt: (member) => {
        const a = new FakeAdoption(member);
        (a as FakeAdoption & { by: string }).by = clientId;
        adoptions.push(a);
        return a;
      },
      onEvent: (e) => events.push({ who: clientId, e }),
    });
    members.push(m);
    return m;
  };
  /** A crash: no more heartbeats, nothing cleaned up (the key is left to expire). */
  const kill = (m: GroupMembership) => {
    members.splice(members.indexOf(m), 1);
    // close() stops its timers and leaves Redis as it is, as SIGKILL would
    return m.close();
  };
  /** Members a and b; b crashes and, once its heartbeat expired, a is adopting its session. */
  const bDiedAndAAdopts = async () => {
    const a = join('a');
    const b = join('b');
    await Promise.all([a.start(), b.start()]);
    await kill(b);
    await timers.advance(2 * TTL);
    assert.equal(adoptions.length, 1);
    return { a, b };
  };

  beforeEach(() => {
    clock = new ManualClock(1_000_000);
    timers = new ManualTimers(clock);
    store = new FakeMembershipStore(clock);
    members = [];
    adoptions = [];
    events = [];
  });
  afterEach(async () => {
    for (const a of adoptions) a.end('stopped');
    for (const m of members) await m.close();
  });

  it('shareGroupOf: the group of a $share/ topic, null for a plain one', () => {
    assert.deepEqual(shareGroupOf('$share/hv/HyperVolt/sensors/+/+'), { group: 'hv', filter: 'HyperVolt/sensors/+/+' });
    assert.equal(shareGroupOf('HyperVolt/sensors/+/+'), null);
    assert.equal(shareGroupOf('$share//x'), null);
    assert.equal(shareGroupOf('$share/g'), null);
  });

  it('memberTtlMs: seconds (fractional) from 0.3 to 3600, else 15 s', () => {
    assert.equal(memberTtlMs('2'), 2000);
    assert.equal(memberTtlMs('0.5'), 500);
    assert.equal(memberTtlMs(''), 15_000);
    assert.equal(memberTtlMs('0.1'), 15_000);
    assert.equal(memberTtlMs('soon'), 15_000);
    assert.equal(memberTtlMs(undefined), 15_000);
  });

  it('a live member is never adopted: heartbeats every third of the TTL keep it alive', async () => {
    const a = join('a');
    const b = join('b');
    await Promise.all([a.start(), b.start()]);
    await timers.advance(10 * TTL);
    assert.equal(adoptions.length, 0);
    assert.deepEqual([...store.known.keys()].sort(), ['a', 'b']);
  });

  it('detects a dead member once its heartbeat expired, and adopts it with what it recorded', async () => {
    const a = join('a');
    const b = join('b');
    await Promise.all([a.start(), b.start()]);
    await timers.advance(TTL);
    const diedAt = clock.now();
    await kill(b);
    await timers.advance(TTL - 100); // its key still lives
    assert.equal(adoptions.length, 0, 'not before its heartbeat expired');
    await timers.advance(TTL); // expired, and a's next tick (every TTL/3) sees it
    assert.equal(adoptions.length, 1);
    assert.deepEqual(adoptions[0].member, info('b'));
    assert.deepEqual(a.adopting, { clientId: 'b', taken: 0 });
    const started = events.find((x) => x.e.type === 'adopting');
    assert.ok(started && started.who === 'a');
    adoptions[0].taken = 3120;
    assert.deepEqual(a.adopting, { clientId: 'b', taken: 3120 });
    assert.ok(clock.now() - diedAt <= TTL + TTL, 'within a TTL and a tick of its last heartbeat');

    adoptions[0].end('adopted');
    await timers.advance(10);
    assert.equal(a.adopting, null);
    assert.ok(!store.known.has('b'), 'an adopted member is forgotten');
    assert.equal(store.locks.has('b'), false, 'its lock released');
    assert.ok(events.some((x) => x.e.type === 'adopted' && x.e.result.outcome === 'adopted'));
    await timers.advance(5 * TTL);
    assert.equal(adoptions.length, 1, 'adopted once');
  });

  it('exactly one survivor adopts a dead member, however many look', async () => {
    const ms = ['a', 'b', 'c', 'd'].map(join);
    await Promise.all(ms.map((m) => m.start()));
    await timers.advance(TTL);
    await kill(ms[3]);
    await timers.advance(3 * TTL); // every survivor has looked several times
    assert.equal(adoptions.length, 1, 'one adoption');
    const adopter = (adoptions[0] as FakeAdoption & { by: string }).by;
    assert.ok(['a', 'b', 'c'].includes(adopter));
    // The adopter keeps its lock while it works, however long.
    await timers.advance(10 * TTL);
    assert.equal(adoptions.length, 1, 'the lock is renewed while the adoption runs');
    assert.equal(store.locks.get('d')?.token, `token-${adopter}`);
  });

  it('two dead members: adopted one after the other (one adoption at a time per instance)', async () => {
    const [a, b, c] = ['a', 'b', 'c'].map(join);
    await Promise.all([a, b, c].map((m) => m.start()));
    await kill(b);
    await kill(c);
    await timers.advance(2 * TTL);
    assert.equal(adoptions.length, 1);
    adoptions[0].end('adopted');
    await timers.advance(TTL);
    assert.equal(adoptions.length, 2);
    assert.notEqual(adoptions[0].member.clientId, adoptions[1].member.clientId);
  });

  it('the owner taking its session back ends the adoption quietly: no retry against the live owner', async () => {
    const { a } = await bDiedAndAAdopts();
    // b restarts: it heartbeats, and its MQTT connect takes the session over: the adopter's
    // connection is closed and not reopened (SessionAdoption: 'interrupted').
    const b = join('b');
    const waiting = b.start(); // waits while the adoption lock is held
    await timers.advance(10);
    adoptions[0].end('interrupted');
    await timers.advance(10);
    assert.equal(a.adopting, null);
    assert.ok(store.known.has('b'), 'not forgotten');
    assert.ok(store.locks.has('b'), 'the lock is left to expire, not released');
    await timers.advance(2 * TTL);
    await waiting;
    assert.ok(events.some((x) => x.who === 'b' && x.e.type === 'waiting'), 'the owner waited for the adoption');
    await timers.advance(10 * TTL);
    assert.equal(adoptions.length, 1, 'the owner is alive: never adopted again');
  });

  it('a restarting member waits while a survivor adopts its session, then starts', async () => {
    const a = join('a');
    await a.start();
    await store.heartbeat(info('b'), TTL); // b ran before, and died
    await timers.advance(2 * TTL);
    assert.equal(adoptions.length, 1);
    const b = join('b');
    let started = false;
    void b.start().then(() => (started = true));
    await timers.advance(5 * TTL);
    assert.equal(started, false, 'still adopted: b waits');
    adoptions[0].end('adopted');
    await timers.advance(TTL);
    assert.equal(started, true);
    assert.ok(store.known.has('b'), 'b heartbeats, so the adopter did not forget it');
  });

  it('a member that stops heartbeating without Redis reports one error, then recovery; adoption waits for Redis', async () => {
    const a = join('a');
    const b = join('b');
    await Promise.all([a.start(), b.start()]);
    store.down = true;
    await timers.advance(5 * TTL);
    assert.equal(events.filter((x) => x.who === 'a' && x.e.type === 'error').length, 1, 'one error per outage');
    assert.equal(adoptions.length, 0);
    store.down = false;
    await timers.advance(TTL);
    assert.equal(events.filter((x) => x.who === 'a' && x.e.type === 'recovered').length, 1);
    assert.equal(adoptions.length, 0, 'both heartbeat again: nobody is dead');
  });

  it('start() does not hold ingest back when Redis does not answer', async () => {
    store.hang = true;
    const a = join('a');
    let started = false;
    void a.start().then(() => (started = true));
    await timers.advance(2900);
    assert.equal(started, false);
    await timers.advance(200);
    assert.equal(started, true, 'within startTimeoutMs (3 s)');
    assert.equal(events.filter((x) => x.e.type === 'error').length, 1);
  });

  it('an adoption whose lock was lost (another took it) is stopped', async () => {
    await bDiedAndAAdopts();
    store.locks.set('b', { token: 'someone-else', until: clock.now() + 10 * TTL });
    await timers.advance(TTL);
    assert.equal(adoptions[0].stopped, true);
  });

  it('close() stops an adoption in progress and releases its lock for another survivor', async () => {
    const { a } = await bDiedAndAAdopts();
    members.splice(members.indexOf(a), 1);
    await a.close();
    assert.equal(adoptions[0].stopped, true);
    assert.equal(store.locks.has('b'), false);
    assert.ok(store.known.has('b'), 'not adopted: still known, for the next survivor');
  });
});

/** A session on the dead client id: the test makes messages arrive, or the owner take it back. */
class FakeSession implements AdoptedSession {
  received = 0;
  busy = false;
  connected = false;
  ended = false;
  sessionPresent: boolean | null = null;
  unsubscribed: string[] = [];
  closedWith: Array<{ deleteSession?: boolean }> = [];
  async start(): Promise<void> {
    this.connected = true;
    this.sessionPresent = true;
  }
  async unsubscribe(topic: string): Promise<void> {
    this.unsubscribed.push(topic);
  }
  async close(opts: { deleteSession?: boolean } = {}): Promise<void> {
    this.closedWith.push(opts);
    this.connected = false;
  }
  takeOver(): void {
    this.connected = false;
    this.ended = true;
  }
}

/** The dead member's spool: entries removed when the "flow" stores them. */
class FakeOrphanSpool implements OrphanSpool {
  entries = new Map<number, SpoolEntry>();
  closed = false;
  constructor(n: number) {
    for (let i = 1; i <= n; i++) this.entries.set(i, { id: i, topic: 't', payload: Buffer.from(String(i)), receivedAt: i });
  }
  get count(): number {
    return this.entries.size;
  }
  pending(afterId: number, limit: number): SpoolEntry[] {
    return [...this.entries.values()].filter((e) => e.id > afterId).slice(0, limit);
  }
  removeSoon(id: number): void {
    this.entries.delete(id);
  }
  deadLetterSoon(_l: DeadLetter): void {}
  close(): void {
    this.closed = true;
  }
}

describe('sensor-in adoption: draining a session', () => {
  let clock: ManualClock;
  let timers: ManualTimers;
  let session: FakeSession;
  let spool: FakeOrphanSpool | null;
  let emitted: Array<{ entry: SpoolEntry; sink: SpoolSink }>;
  let forgotten: SpoolSink[];
  let storeOnEmit: boolean;
  const TOPIC = '$share/g/HyperVolt/sensors/+/+';

  const adoption = (extra: Partial<ConstructorParameters<typeof SessionAdoption>[1]> = {}) => {
    const io: AdoptionIO = {
      openSession: () => session,
      openSpool: () => (spool ? { spool } : { skipped: 'not on this machine' }),
      emit: (entry, sink) => {
        emitted.push({ entry, sink });
        if (storeOnEmit) sink.removeSoon(entry.id);
      },
      forget: (sink) => forgotten.push(sink),
    };
    return new SessionAdoption(info('dead'), { io, topic: TOPIC, clock, timers, idleMs: 2000, pollMs: 100, stallMs: 5000, maxPasses: 2, ...extra });
  };

  beforeEach(() => {
    clock = new ManualClock(5_000_000);
    timers = new ManualTimers(clock);
    session = new FakeSession();
    spool = null;
    emitted = [];
    forgotten = [];
    storeOnEmit = true;
  });

  it('unsubscribes the share at once, takes what comes, deletes the session only after idle', async () => {
    const run = adoption();
    let result = undefined as AdoptionResult | undefined;
    void run.run().then((r) => (result = r));
    await timers.advance(100);
    assert.deepEqual(session.unsubscribed, [TOPIC]);
    for (let i = 0; i < 10; i++) {
      session.received += 300; // the queued messages arrive
      await timers.advance(500);
    }
    assert.equal(result === undefined, true, "not yet");
    assert.deepEqual(session.closedWith, [], 'not while messages come');
    session.busy = true; // appends not committed yet, or held: not idle
    await timers.advance(3000);
    assert.deepEqual(session.closedWith, []);
    session.busy = false;
    await timers.advance(1800);
    assert.deepEqual(session.closedWith, [], 'idle for less than 2 s');
    await timers.advance(500);
    assert.deepEqual(session.closedWith, [{ deleteSession: true }]);
    assert.equal(run.taken, 3000);
    assert.ok(result);
    assert.equal(result.outcome, 'adopted');
    assert.equal(result.fromSession, 3000);
    assert.equal(result.spoolSkipped, 'not on this machine');
  });

  it('stops quietly when the owner takes its session back: no delete, no spool replay', async () => {
    spool = new FakeOrphanSpool(5);
    const run = adoption();
    let result = undefined as AdoptionResult | undefined;
    void run.run().then((r) => (result = r));
    await timers.advance(200);
    session.received = 40;
    await timers.advance(300);
    session.takeOver();
    await timers.advance(200);
    assert.ok(result);
    assert.equal(result.outcome, 'interrupted');
    assert.equal(result.fromSession, 40);
    assert.ok(session.closedWith.every((o) => !o.deleteSession), 'the session is the owner\'s again');
    assert.equal(emitted.length, 0, 'its spool is left to the owner');
  });

  it('gives up when it cannot connect', async () => {
    session.start = async () => {
      session.ended = true; // the broker refused, or went away
    };
    const run = adoption();
    let result = undefined as AdoptionResult | undefined;
    void run.run().then((r) => (result = r));
    await timers.advance(200);
    assert.equal(result?.outcome, 'interrupted');
    assert.deepEqual(session.unsubscribed, []);
  });

  it('replays the dead member\'s spool with that spool as the completion sink, and closes it once drained', async () => {
    spool = new FakeOrphanSpool(1200);
    const run = adoption({ pageSize: 500 });
    let result = undefined as AdoptionResult | undefined;
    void run.run().then((r) => (result = r));
    session.received = 7;
    await timers.advance(3000);
    assert.ok(result);
    assert.equal(result.outcome, 'adopted');
    assert.equal(emitted.length, 1200);
    assert.ok(emitted.every((x) => x.sink === spool), 'each entry leaves the dead member\'s spool');
    assert.deepEqual(emitted.slice(0, 3).map((x) => x.entry.id), [1, 2, 3]);
    assert.equal(result.fromSpool, 1200);
    assert.equal(result.fromSession, 7);
    assert.equal(result.spoolLeft, 0);
    assert.equal(spool.closed, true);
    assert.equal(run.taken, 1207);
  });

  it('a stalled spool (entries given up downstream) gets another pass, then is left for its owner', async () => {
    spool = new FakeOrphanSpool(10);
    storeOnEmit = false; // the database is down: nothing is ever removed
    const run = adoption();
    let result = undefined as AdoptionResult | undefined;
    void run.run().then((r) => (result = r));
    await timers.advance(2500);
    assert.equal(emitted.length, 10);
    await timers.advance(5000);
    assert.equal(emitted.length, 20, 'a second pass after the stall');
    await timers.advance(5000);
    assert.ok(result);
    assert.equal(result.outcome, 'adopted');
    assert.equal(result.spoolLeft, 10);
    assert.equal(spool.closed, true);
    assert.ok(forgotten.includes(spool), 'no longer tracked once closed');
  });

  it('stop() leaves the session (not deleted) for the next adopter', async () => {
    const run = adoption();
    let result = undefined as AdoptionResult | undefined;
    void run.run().then((r) => (result = r));
    session.received = 100;
    await timers.advance(500);
    run.stop();
    await timers.advance(10);
    assert.equal(result?.outcome, 'stopped');
    assert.ok(session.closedWith.every((o) => !o.deleteSession));
  });
});

describe('sensor-in adoption: the dead member\'s spool file', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-adopt-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is used when it exists here and is not our own spool path', () => {
    const theirs = path.join(dir, 'b', 'spool.db');
    fs.mkdirSync(path.dirname(theirs));
    fs.writeFileSync(theirs, '');
    assert.deepEqual(orphanSpoolFile({ clientId: 'b', host: 'h', spool: theirs }, path.join(dir, 'a', 'spool.db')), { file: theirs });
  });

  it('is skipped at our own path (another machine\'s file of the same name), when missing, or unrecorded', () => {
    const ours = path.join(dir, 'spool.db');
    fs.writeFileSync(ours, '');
    const same = orphanSpoolFile({ clientId: 'b', host: 'other', spool: ours }, ours);
    assert.ok('skipped' in same && /own spool path/.test(same.skipped));
    const missing = orphanSpoolFile({ clientId: 'b', host: 'other', spool: path.join(dir, 'nope.db') }, ours);
    assert.ok('skipped' in missing && /ENOENT/.test(missing.skipped) && /host other/.test(missing.skipped));
    assert.ok('skipped' in orphanSpoolFile({ clientId: 'b', host: 'x', spool: '' }, ours));
  });
});
