/**
 * Leadership of scheduled jobs among instances that share a hot store: a lock with expiry, so at
 * most one instance runs a job (carbon fetch, weather fetch, cleanup) at a time, and a leader
 * that dies is replaced once its lock expires. Shared by both stores; the Redis part is a script.
 */

/** Lock names: what a flow author types into the node (`carbon-fetch`, `cleanup`). */
const LOCK_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Shortest and longest lock lifetime: below 100 ms a lock would expire between two calls. */
export const MIN_LEAD_TTL_MS = 100;
export const MAX_LEAD_TTL_MS = 24 * 3600 * 1000;

export function assertLeadArgs(name: unknown, ttlMs: unknown): void {
  if (typeof name !== 'string' || !LOCK_NAME.test(name)) {
    throw new TypeError('a lock name must be 1 to 64 of A-Z a-z 0-9 _ . : -');
  }
  if (typeof ttlMs !== 'number' || !Number.isInteger(ttlMs) || ttlMs < MIN_LEAD_TTL_MS || ttlMs > MAX_LEAD_TTL_MS) {
    throw new RangeError(`a lock ttl must be a whole number of ms from ${MIN_LEAD_TTL_MS} to ${MAX_LEAD_TTL_MS}`);
  }
}

/**
 * KEYS[1] the lock; ARGV[1] this store's token, ARGV[2] ttl ms. Ours: extend it. Free: take it.
 * Another's: leave it. One script, so the check and the write cannot interleave with another
 * instance's (a plain GET then PEXPIRE could extend a lock that just changed hands).
 */
export const LEAD_SCRIPT = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** KEYS[1] the lock; ARGV[1] this store's token. Deletes the lock only while we hold it. */
export const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** What a `LeaderGate` needs of the store. */
export interface LeadershipStore {
  tryLead(name: string, ttlMs: number): Promise<boolean>;
}

/**
 * Holds (or waits for) the leadership of one job while it runs: asks at start and then every
 * third of the TTL, so a living leader never lets its lock lapse and a standby takes over within
 * about one TTL of the leader's death. `check()` asks now (and extends), for a msg at the gate.
 */
export class LeaderGate {
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private failed = false;
  private stopped = false;

  constructor(
    private readonly store: LeadershipStore,
    readonly lock: string,
    readonly ttlMs: number,
    /** Called when leadership changes, and with the error when asking failed. */
    private readonly onChange: (leading: boolean, error?: Error) => void,
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    const renew = () => {
      this.check().catch(() => undefined); // reported through onChange
    };
    renew();
    this.timer = setInterval(renew, Math.max(50, Math.floor(this.ttlMs / 3)));
  }

  /** Whether this instance leads now. Not leading when the store cannot tell (no double run). */
  async check(): Promise<boolean> {
    let leading: boolean;
    try {
      leading = await this.store.tryLead(this.lock, this.ttlMs);
    } catch (err) {
      this.set(false, err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
    this.set(leading);
    return leading;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private set(leading: boolean, error?: Error): void {
    if (this.stopped) return;
    // A recovery after a failure is a change too (the status shows the error until then).
    const changed = leading !== this.leading || this.failed;
    this.leading = leading;
    this.failed = Boolean(error);
    if (changed || error) this.onChange(leading, error);
  }
}
