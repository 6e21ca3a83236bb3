/**
 * Seeded, counter-based randomness for the Pi simulator. Every number is a hash of
 * (seed, key, counter), so a simulated value is a pure function of its inputs: any reading can be
 * recomputed for any time, in any order, and a run is repeatable from its seed.
 */

const TWO32 = 4294967296;

/** The murmur3 finalizer: a good 32-bit mix. */
export function mix32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a, then mixed: a 32-bit key for a name (a location, an appliance). */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}

/** Folds an integer of up to 53 bits (a timestamp in ms, a slot number) into a hash. */
function absorb(h: number, n: number): number {
  const lo = (n % TWO32) >>> 0;
  const hi = Math.floor(n / TWO32) | 0;
  h = mix32((h ^ lo) + 0x9e3779b9);
  return mix32((h ^ hi) + 0x7f4a7c15);
}

/** A uniform number in [0, 1), fixed by the seed, a key and an integer counter. */
export function uniform(seed: number, key: number, n: number): number {
  return absorb(absorb(mix32(seed ^ 0x5bd1e995), key), Math.floor(n)) / TWO32;
}

/** A uniform number in [-1, 1). */
export function signed(seed: number, key: number, n: number): number {
  return uniform(seed, key, n) * 2 - 1;
}

/**
 * Smooth noise in [0, 1): random values at whole `x`, eased in between (value noise). Used for
 * slow drifts (clouds, grid voltage, weather) that must not jump from one reading to the next.
 */
export function smoothNoise(seed: number, key: number, x: number): number {
  const i = Math.floor(x);
  const f = x - i;
  const u = f * f * (3 - 2 * f);
  const a = uniform(seed, key, i);
  const b = uniform(seed, key, i + 1);
  return a + (b - a) * u;
}

/** A seed from the command line: an integer as is, any other text hashed. */
export function parseSeed(text: string): number {
  return /^-?\d{1,15}$/.test(text) ? Number(text) >>> 0 : hashString(text);
}
