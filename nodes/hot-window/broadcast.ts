/**
 * The broadcast channel of the hot store, free of Node-RED and of Redis: what both stores share.
 *
 * Messages published in one tick of the event loop travel together as ONE JSON array (one Redis
 * PUBLISH, one delivery to each listener): at thousands of readings a second a PUBLISH per reading
 * would cost a command and a wake-up of every subscriber each. The batch is sent from
 * `setImmediate`, i.e. right after the messages of the current tick, with no timer and no added
 * delay; a batch that reaches `maxBatch` messages goes at once.
 */

/**
 * What a subscriber is called with: one published message (a parsed copy). A listener that passes
 * messages on asynchronously may return a promise that settles once it has handed this message on
 * (anything else it returns is ignored); for this instance's own messages `publish` then resolves
 * only after that (flow control: what a publisher waits for includes its own local delivery).
 * Listeners called with the messages of one batch may return the same promise for all of them.
 */
export type BroadcastListener = (message: unknown) => unknown;

/**
 * Ends a subscription when called (again does nothing). `ready` resolves once the channel
 * subscription is active, i.e. from when on messages published anywhere reach the listener.
 */
export interface Unsubscribe {
  (): void;
  readonly ready: Promise<void>;
}

/** Makes an `Unsubscribe` of a function that may be called more than once. */
export function unsubscribeHandle(end: () => void, ready: Promise<void>): Unsubscribe {
  let ended = false;
  const fn = () => {
    if (ended) return;
    ended = true;
    end();
  };
  return Object.assign(fn, { ready });
}

/** Most messages in one batch (one PUBLISH): bounds the size of a channel message. */
export const DEFAULT_BROADCAST_BATCH_MAX = 1000;

interface PendingBatch {
  parts: string[];
  /** Settles when this batch was sent (or failed to be). */
  done: Promise<void>;
  settle(err?: Error): void;
}

function newBatch(): PendingBatch {
  let settle!: (err?: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  return { parts: [], done, settle };
}

/**
 * Collects the messages of one tick and hands them to `send` as one JSON array text.
 * `publish` resolves when the batch(es) holding its messages were sent, rejects when sending failed.
 */
export class TickBatcher {
  private pending: PendingBatch | undefined;
  private scheduled: NodeJS.Immediate | undefined;

  constructor(
    private readonly send: (batchText: string) => Promise<void>,
    private readonly maxBatch = DEFAULT_BROADCAST_BATCH_MAX,
  ) {}

  publish(messages: readonly unknown[]): Promise<void> {
    if (!Array.isArray(messages)) return Promise.reject(new TypeError('publish takes an array of messages'));
    // Serialised now: a message that cannot travel fails its caller alone, and a message changed
    // after the call is sent as it was.
    const parts: string[] = [];
    for (const m of messages) {
      let text: string | undefined;
      try {
        text = JSON.stringify(m);
      } catch (err) {
        return Promise.reject(new TypeError(`a broadcast message is not JSON-serialisable: ${(err as Error).message}`));
      }
      if (text === undefined) return Promise.reject(new TypeError('a broadcast message is not JSON-serialisable'));
      parts.push(text);
    }
    const batches = new Set<PendingBatch>();
    for (const part of parts) {
      this.pending ??= newBatch();
      this.pending.parts.push(part);
      batches.add(this.pending);
      if (this.pending.parts.length >= this.maxBatch) this.flush();
    }
    if (this.pending) {
      this.scheduled ??= setImmediate(() => {
        this.scheduled = undefined;
        this.flush();
      });
    }
    return Promise.all([...batches].map((b) => b.done)).then(() => undefined);
  }

  /** Sends what is pending now (also what `close` does, so nothing published is held back). */
  flush(): void {
    const batch = this.pending;
    this.pending = undefined;
    if (!batch) return;
    let sent: Promise<void>;
    try {
      sent = this.send(`[${batch.parts.join(',')}]`);
    } catch (err) {
      sent = Promise.reject(err);
    }
    sent.then(
      () => batch.settle(),
      (err: unknown) => batch.settle(err instanceof Error ? err : new Error(String(err))),
    );
  }

  /** Flushes and stops the scheduled flush. */
  close(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.flush();
  }
}

/** The messages of one channel message; throws on anything but a JSON array. */
export function parseBroadcastBatch(text: string): unknown[] {
  const value: unknown = JSON.parse(text);
  if (!Array.isArray(value)) throw new TypeError('a broadcast batch must be a JSON array');
  return value;
}

function isThenable(v: unknown): v is PromiseLike<void> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The subscribers of one store. A listener that throws does not keep the others from their message. */
export class BroadcastListeners {
  private readonly listeners = new Set<BroadcastListener>();

  constructor(private readonly onListenerError: (err: Error) => void) {}

  get size(): number {
    return this.listeners.size;
  }

  /** Adds `listener`; the returned function removes it (calling it again does nothing). */
  add(listener: BroadcastListener): () => void {
    // A wrapper per subscription, so the same function subscribed twice is called twice and
    // each unsubscribe removes its own.
    const entry: BroadcastListener = (m) => listener(m);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  /**
   * Delivers every message of a batch text to every listener, each a parsed copy of its own.
   * Returns, when listeners returned promises, one that resolves once they all settled (a rejection
   * is reported like a throw, never passed on); otherwise undefined.
   */
  deliver(batchText: string): Promise<void> | undefined {
    let messages: unknown[];
    try {
      messages = parseBroadcastBatch(batchText);
    } catch (err) {
      this.onListenerError(new Error(`ignored a broadcast that is not a JSON array: ${(err as Error).message}`));
      return undefined;
    }
    const many = this.listeners.size > 1;
    let handedOn: Set<PromiseLike<void>> | undefined;
    for (const listener of this.listeners) {
      const copy = many ? parseBroadcastBatch(batchText) : messages;
      for (const m of copy) {
        try {
          const p = listener(m);
          if (isThenable(p)) (handedOn ??= new Set()).add(p);
        } catch (err) {
          this.onListenerError(asError(err));
        }
      }
    }
    if (!handedOn) return undefined;
    return Promise.all(
      [...handedOn].map((p) => Promise.resolve(p).catch((err: unknown) => this.onListenerError(asError(err)))),
    ).then(() => undefined);
  }

  clear(): void {
    this.listeners.clear();
  }
}
