/** An injectable clock, so the logic can be tested at any time of day. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock for tests: it only moves when told to. */
export class ManualClock implements Clock {
  constructor(private t: number = Date.parse('2026-01-26T08:00:00Z')) {}
  now(): number {
    return this.t;
  }
  set(t: number | string): void {
    this.t = typeof t === 'string' ? Date.parse(t) : t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}
