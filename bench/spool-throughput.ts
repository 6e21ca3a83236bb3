/**
 * `npm run bench:spool`: how fast the ingest spool (nodes/shared/spool/spool.ts) takes appends,
 * and the cold store's spill file (nodes/cold-store/reading-spill.ts) takes readings, on this
 * machine's disk. Prints appends per second for:
 * - one append at a time (each awaited until durable: one transaction and one WAL sync per
 *   message, the worst case, a publisher that waits for each PUBACK);
 * - bursts of 10, 100 and 1 000 appends in the same tick (group commit: one transaction and one
 *   sync per tick, what sensor-in sees under load);
 * with `synchronous = FULL` (the default: survives a power loss) and `NORMAL` (survives a crash).
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { Spool } from '../nodes/shared/spool/spool';
import { ReadingSpill } from '../nodes/cold-store/reading-spill';

const PAYLOAD = Buffer.from(
  JSON.stringify({ sensor_type: 'temperature', sensor_id: 'living_room_1', value: 21.4, unit: 'celsius', location: 'living_room', timestamp: '2026-01-26T08:00:00.000Z' }),
);

/** Appends per second: `total` appends in bursts of `burst` started in one tick, each burst awaited. */
async function appendRate(burst: number, total: number, append: (i: number) => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let done = 0; done < total; done += burst) {
    const batch: Array<Promise<unknown>> = [];
    for (let i = 0; i < burst; i++) batch.push(append(done + i));
    await Promise.all(batch);
  }
  return total / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function spoolRate(dir: string, sync: 'FULL' | 'NORMAL', burst: number, total: number): Promise<number> {
  const spool = new Spool(path.join(dir, `spool-${sync}-${burst}.db`), { synchronous: sync });
  try {
    // Durable appends, as sensor-in waits for them before a PUBACK: the commit, then the WAL sync.
    const durable = async () => {
      await spool.append({ topic: 'hypervolt/sensors/living_room/temperature', payload: PAYLOAD, receivedAt: Date.now() });
      await spool.whenDurable();
    };
    return await appendRate(burst, total, durable);
  } finally {
    spool.close();
  }
}

async function spillRate(dir: string, burst: number, total: number): Promise<number> {
  const spill = new ReadingSpill(path.join(dir, `spill-${burst}.db`));
  const reading = JSON.parse(PAYLOAD.toString()) as Parameters<ReadingSpill['append']>[0][number];
  try {
    return await appendRate(burst, total, (i) => spill.append([{ ...reading, timestamp: new Date(i).toISOString() }]));
  } finally {
    spill.close();
  }
}

async function main(): Promise<void> {
  // The directory to measure in (the disk of DATA_DIR matters): the first argument, else the temp dir.
  const dir = fs.mkdtempSync(path.join(process.argv[2] ?? os.tmpdir(), 'hv-spool-bench-'));
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(9);
  try {
    console.log(`spool appends/s on ${dir} (load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`);
    console.log('burst per tick   FULL        NORMAL');
    for (const burst of [1, 10, 100, 1000]) {
      const total = burst === 1 ? 2000 : burst === 10 ? 20_000 : 100_000;
      const full = await spoolRate(dir, 'FULL', burst, total);
      const normal = await spoolRate(dir, 'NORMAL', burst, total);
      console.log(`${String(burst).padStart(14)} ${fmt(full)}   ${fmt(normal)}`);
    }
    console.log('cold-store spill file readings/s (FULL)');
    for (const burst of [1, 100, 1000]) {
      const total = burst === 1 ? 2000 : 100_000;
      console.log(`${String(burst).padStart(14)} ${fmt(await spillRate(dir, burst, total))}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
