/**
 * The group membership of ./adoption.ts in Redis. Keys (under the hot store's prefix):
 * - `members:{group}:{clientId}`: the heartbeat (JSON of the member), PX ttl;
 * - `members:{group}`: a hash clientId → the same JSON, so a member is still known (with its host
 *   and spool file) once its heartbeat has expired;
 * - `adopt:{group}:{clientId}`: the adoption lock, the adopter's token, PX ttl.
 */
import Redis, { type RedisOptions } from 'ioredis';
import type { MemberInfo, MembershipStore } from './adoption';
import { RELEASE_SCRIPT } from '../hot-window/leadership';

/** KEYS[1] lock; ARGV[1] token, ARGV[2] ttl ms: extends the lock only while the token holds it. */
const RENEW_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;
/** KEYS[1] heartbeat, KEYS[2] hash; ARGV[1] client id: forgets the member unless it is alive again. */
const FORGET_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
return redis.call('HDEL', KEYS[2], ARGV[1])
`;

/** A client of its own: commands wait (briefly) for a connection instead of failing at start. */
export function membershipRedisOptions(): RedisOptions {
  return {
    lazyConnect: false,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    retryStrategy: (times: number) => Math.min(times * 250, 5000),
  };
}

function parseMember(clientId: string, text: string | null | undefined): MemberInfo {
  try {
    const v = JSON.parse(text ?? '') as Partial<MemberInfo>;
    return { clientId, host: typeof v.host === 'string' ? v.host : '', spool: typeof v.spool === 'string' ? v.spool : '' };
  } catch {
    return { clientId, host: '', spool: '' };
  }
}

export class RedisMembershipStore implements MembershipStore {
  private readonly hashKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly group: string,
  ) {
    this.hashKey = `${prefix}members:${group}`;
  }

  private memberKey(clientId: string): string {
    return `${this.hashKey}:${clientId}`;
  }

  private lockKey(clientId: string): string {
    return `${this.prefix}adopt:${this.group}:${clientId}`;
  }

  async heartbeat(me: MemberInfo, ttlMs: number): Promise<void> {
    const text = JSON.stringify({ host: me.host, spool: me.spool });
    const results = await this.redis
      .multi()
      .set(this.memberKey(me.clientId), text, 'PX', ttlMs)
      .hset(this.hashKey, me.clientId, text)
      .exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  async members(): Promise<Array<MemberInfo & { alive: boolean }>> {
    const all = await this.redis.hgetall(this.hashKey);
    const ids = Object.keys(all);
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.exists(this.memberKey(id));
    const results = (await pipe.exec()) ?? [];
    return ids.map((id, i) => {
      const [err, n] = results[i] ?? [new Error('no reply'), 0];
      if (err) throw err;
      return { ...parseMember(id, all[id]), alive: n === 1 };
    });
  }

  async lock(clientId: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.lockKey(clientId), token, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async renew(clientId: string, token: string, ttlMs: number): Promise<boolean> {
    return Number(await this.redis.eval(RENEW_SCRIPT, 1, this.lockKey(clientId), token, ttlMs)) === 1;
  }

  async unlock(clientId: string, token: string): Promise<void> {
    await this.redis.eval(RELEASE_SCRIPT, 1, this.lockKey(clientId), token);
  }

  async locked(clientId: string): Promise<boolean> {
    return (await this.redis.exists(this.lockKey(clientId))) === 1;
  }

  async forget(clientId: string): Promise<boolean> {
    return Number(await this.redis.eval(FORGET_SCRIPT, 2, this.memberKey(clientId), this.hashKey, clientId)) === 1;
  }
}
