/**
 * Helpers of the end-to-end tests: a WebSocket inbox, an MQTT client for this machine's broker,
 * JSON requests, and polling.
 */
import assert from 'assert/strict';
import mqtt from 'mqtt';
import WebSocket from 'ws';

/** Collects a WebSocket client's messages; `next` waits for the first unseen one that matches. */
export class WsInbox {
  readonly messages: unknown[] = [];
  private seen = 0;
  private waiters: Array<() => void> = [];
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      let m: unknown;
      try {
        m = JSON.parse(data.toString());
      } catch {
        m = data.toString();
      }
      this.messages.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
  }
  static async open(url: string): Promise<WsInbox> {
    const ws = new WebSocket(url);
    const inbox = new WsInbox(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return inbox;
  }
  /** The next message (after those already taken), within `ms`; with `type`, the next of that type. */
  async next(ms = 5000, type?: string): Promise<unknown> {
    const deadline = Date.now() + ms;
    for (;;) {
      while (this.seen < this.messages.length) {
        const m = this.messages[this.seen++] as { type?: unknown };
        if (type === undefined || m?.type === type) return m;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no WebSocket message within ${ms} ms (got ${JSON.stringify(this.messages)})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
  /** Asserts nothing new arrives within `ms`. */
  async nothingWithin(ms: number): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    assert.deepEqual(this.messages.slice(this.seen), [], 'no further WebSocket message');
  }
  close(): void {
    this.ws.terminate();
  }
}

export function mqttConnect(opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect('mqtt://127.0.0.1:1883', { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

export async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { headers });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

export async function postJson(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

/** Polls until `check` returns a value (not undefined) or `ms` pass. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms${last ? ` (${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
