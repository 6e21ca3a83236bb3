/**
 * Wiring of a sensor-in's group membership (./adoption.ts) to Redis (./membership-redis.ts),
 * MQTT (./durable-subscriber.ts) and the spool; free of Node-RED. The node supplies its
 * subscriber options, how a spooled entry goes into the flow, and what to do with the events.
 */
import { randomUUID } from 'crypto';
import os from 'os';
import Redis from 'ioredis';
import { Spool, type SpoolEntry, type SpoolSink } from '../shared/spool/spool';
import { completions } from '../shared/spool/tracker';
import { GroupMembership, orphanSpoolFile, SessionAdoption, type MembershipEvent } from './adoption';
import { DurableSubscriber, type DurableSubscriberOptions } from './durable-subscriber';
import { membershipRedisOptions, RedisMembershipStore } from './membership-redis';

export interface GroupSetup {
  redis: { url: string; prefix: string };
  group: string;
  /** Heartbeat expiry and adoption lock lifetime, ms. */
  ttlMs: number;
  /** The node's own subscriber options: an adopted session uses them with the dead client id. */
  subscriber: DurableSubscriberOptions;
  /** This member's spool file (recorded, so that a survivor on this machine can replay it). */
  spoolFile: string;
  /** Sends an entry into the flow, to leave `sink` once settled. */
  deliver: (entry: SpoolEntry, sink: SpoolSink) => void;
  onEvent: (event: MembershipEvent) => void;
  onSpoolError: (err: Error) => void;
}

export interface GroupMember {
  membership: GroupMembership;
  /** Stops the membership (and an adoption in progress), closes the Redis connection. */
  close(): Promise<void>;
}

/** Parses a heartbeat TTL in seconds (e.g. HYPERVOLT_LEADER_TTL_SECONDS): 0.3 to 3600, else 15. */
export function memberTtlMs(value: unknown): number {
  const s = Number(String(value ?? '').trim() || 15);
  return Number.isFinite(s) && s >= 0.3 && s <= 3600 ? Math.round(s * 1000) : 15_000;
}

/**
 * The log line of a membership event (through the node's i18n `t`): one when an adoption starts,
 * one when it ends (with its counts), and Redis trouble once per outage.
 */
export function membershipMessage(
  e: MembershipEvent,
  t: (key: string, params?: Record<string, string | number>) => string,
): { level: 'log' | 'warn'; text: string } {
  switch (e.type) {
    case 'adopting':
      return { level: 'log', text: t('log.adopting', { id: e.member.clientId, host: e.member.host || '?', spool: e.member.spool || '?' }) };
    case 'adopted': {
      const r = e.result;
      const p = { id: r.clientId, session: r.fromSession, spool: r.fromSpool, s: (r.ms / 1000).toFixed(1), left: r.spoolLeft, reason: r.reason ?? '' };
      const key = r.outcome === 'adopted' ? 'log.adopted' : r.outcome === 'stopped' ? 'log.adoptionStopped' : 'log.adoptionInterrupted';
      const notes = [r.sessionPresent === false ? t('log.noSession') : '', r.spoolSkipped ? t('log.spoolSkipped', { why: r.spoolSkipped }) : ''];
      return { level: 'log', text: [t(key, p), ...notes.filter(Boolean)].join(' ') };
    }
    case 'waiting':
      return { level: 'log', text: t('log.waitingForAdoption', { id: e.clientId }) };
    case 'error':
      return { level: 'warn', text: t('log.membershipError', { error: e.error.message }) };
    default:
      return { level: 'log', text: t('log.membershipRecovered') };
  }
}

export function joinGroup(setup: GroupSetup): GroupMember {
  const redis = new Redis(setup.redis.url, membershipRedisOptions());
  redis.on('error', () => undefined); // reported once per outage through the membership's events
  const membership = new GroupMembership({
    store: new RedisMembershipStore(redis, setup.redis.prefix, setup.group),
    me: { clientId: setup.subscriber.clientId, host: os.hostname(), spool: setup.spoolFile },
    ttlMs: setup.ttlMs,
    token: randomUUID(),
    onEvent: setup.onEvent,
    adopt: (member) =>
      new SessionAdoption(member, {
        topic: setup.subscriber.topic,
        io: {
          openSession: (clientId) =>
            new DurableSubscriber({ ...setup.subscriber, clientId, replay: false, subscribe: false, reconnect: false, onState: undefined }),
          openSpool: (m) => {
            const found = orphanSpoolFile(m, setup.spoolFile);
            if ('skipped' in found) return found;
            try {
              return { spool: new Spool(found.file, { onError: setup.onSpoolError }) };
            } catch (err) {
              return { skipped: `its spool ${found.file}: ${(err as Error).message}` };
            }
          },
          emit: setup.deliver,
          forget: (sink) => completions.forgetSink(sink),
        },
      }),
  });
  return {
    membership,
    close: async () => {
      await membership.close().catch(() => undefined);
      redis.disconnect();
    },
  };
}
