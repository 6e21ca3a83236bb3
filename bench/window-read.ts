/**
 * `npm run bench:window`: what reading the hot window costs the app's CPU, without Redis or the
 * network (the in-process store, nodes/hot-window/memory-window-store.ts): one window as
 * `GET /api/sensor-readings/buffer/` reads it, and every window as the AI context
 * (`buildContext`) reads them; and, in the same run, the cost of writing an entry's timestamp
 * with `Date.prototype.toISOString` against `isoFromEpochMs` (nodes/shared/iso-time.ts), which
 * the stores use. Options: `--sensors N` (default 100), `--window N` entries (default 60).
 */
import os from 'os';
import { buildContext } from '../nodes/hot-window/hot-window-ops';
import { MemoryWindowStore } from '../nodes/hot-window/memory-window-store';
import type { SensorKey } from '../nodes/hot-window/window-store';
import { isoFromEpochMs } from '../nodes/shared/iso-time';
import type { Reading } from '../nodes/shared/types';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1 || v > 100_000) throw new Error(`--${name} must be a whole number from 1 to 100000, got "${process.argv[i + 1] ?? ''}"`);
  return v;
}

/** Mean µs per call of `f` over `n` calls, after `n / 10` calls not counted (the JIT's warm-up). */
async function microsPerCall(n: number, f: () => unknown): Promise<number> {
  for (let i = 0; i < Math.ceil(n / 10); i++) await f();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await f();
  return Number(process.hrtime.bigint() - t0) / 1e3 / n;
}

async function main(): Promise<void> {
  const sensors = option('sensors', 100);
  const size = option('window', 60);
  const now = Date.now();
  const store = new MemoryWindowStore({ size });
  const keys: SensorKey[] = [];
  const readings: Reading[] = [];
  for (let s = 0; s < sensors; s++) {
    const key = { sensor_type: 'power', sensor_id: `bench_s${s}` };
    keys.push(key);
    for (let k = 0; k < size; k++) {
      // One reading a second per sensor, the newest a second ago: full windows, all on today's date.
      readings.push({ ...key, value: k, unit: 'W', location: 'room_1', timestamp: new Date(now - (size - k) * 1000).toISOString() });
    }
  }
  await store.pushMany(readings);
  const fmt = (us: number) => us.toFixed(us < 10 ? 2 : 1).padStart(9);
  console.log(`hot window reads, in-process store: ${sensors} sensors x ${size} entries (load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`);
  console.log(`  one window (buffer)          ${fmt(await microsPerCall(20_000, () => store.read(keys[0])))} µs`);
  console.log(`  every window (AI context)    ${fmt(await microsPerCall(1_000, () => buildContext(store, now)))} µs`);
  // The timestamps of one window, written both ways in this run (`sink` keeps the work from being dropped).
  const times = Array.from({ length: size }, (_, k) => now - (size - k) * 1000);
  let sink = 0;
  const perEntry = (f: (ms: number) => string) => async () => {
    for (const ms of times) sink += f(ms).length;
  };
  const slow = (await microsPerCall(20_000, perEntry((ms) => new Date(ms).toISOString()))) / size;
  const fast = (await microsPerCall(20_000, perEntry(isoFromEpochMs))) / size;
  const same = times.every((ms) => isoFromEpochMs(ms) === new Date(ms).toISOString());
  console.log(`  an entry's timestamp: toISOString ${(slow * 1000).toFixed(0)} ns, isoFromEpochMs ${(fast * 1000).toFixed(0)} ns; the same text: ${same ? 'yes' : 'NO'} (${sink} characters)`);
  if (!same) process.exitCode = 1;
  await store.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
