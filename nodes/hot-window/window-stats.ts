import type { WindowEntry, WindowSnapshot, WindowStats } from '../shared/types';

/**
 * Stats of one window (entries oldest first), in the shape of `GET /api/sensor-readings/buffer/`.
 * An empty window has only `count` and `is_full`, as the original backend answered.
 * The average is the plain mean, summed oldest first, so both stores give the same bits.
 */
export function computeStats(entries: readonly WindowEntry[], size: number): WindowStats {
  const count = entries.length;
  if (count === 0) return { count: 0, is_full: false };
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const e of entries) {
    if (e.value < min) min = e.value;
    if (e.value > max) max = e.value;
    sum += e.value;
  }
  const latest = entries[count - 1];
  return {
    count,
    is_full: count >= size,
    latest_value: latest.value,
    latest_timestamp: latest.timestamp,
    min_value: min,
    max_value: max,
    avg_value: sum / count,
  };
}

export function snapshotOf(entries: WindowEntry[], size: number): WindowSnapshot {
  return { readings: entries, stats: computeStats(entries, size) };
}
