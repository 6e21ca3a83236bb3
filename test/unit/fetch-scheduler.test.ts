import assert from 'assert/strict';
import { ManualClock } from '../../nodes/shared/clock';
import { FetchError } from '../../nodes/shared/fetch/errors';
import { FetchScheduler, type FetchOutcome, type ScheduleState } from '../../nodes/shared/fetch/scheduler';
import { ManualTimers, settle } from '../../nodes/shared/timers';

const MIN = 60_000;

/** A fetch function whose results the test decides, one per call, and which records its calls. */
class ScriptedFetch {
  calls: { at: number; signal: AbortSignal }[] = [];
  private script: (number | FetchError | 'hang')[] = [];
  constructor(private readonly clock: ManualClock) {}
  then(...steps: (number | FetchError | 'hang')[]): this {
    this.script.push(...steps);
    return this;
  }
  run = (signal: AbortSignal): Promise<number> => {
    this.calls.push({ at: this.clock.now(), signal });
    const step = this.script.shift() ?? 1;
    if (step === 'hang') {
      return new Promise((_resolve, reject) => {
        signal.addEventListener('abort', () => reject(new FetchError('aborted', 'aborted')));
      });
    }
    return step instanceof FetchError ? Promise.reject(step) : Promise.resolve(step);
  };
}

function setup(intervalMs = 15 * MIN, selfScheduled?: boolean) {
  const clock = new ManualClock();
  const timers = new ManualTimers(clock);
  const fetch = new ScriptedFetch(clock);
  const outcomes: { outcome: FetchOutcome<number>; state: ScheduleState; manual: boolean }[] = [];
  const scheduler = new FetchScheduler<number>({
    run: (signal) => fetch.run(signal),
    intervalMs,
    selfScheduled,
    retry: { baseMs: 30_000, capMs: intervalMs, jitter: 0.2 },
    clock,
    timers,
    random: () => 0,
    onOutcome: (outcome, state, manual) => outcomes.push({ outcome, state, manual }),
  });
  const t0 = clock.now();
  const offsets = () => fetch.calls.map((c) => (c.at - t0) / 1000);
  return { clock, timers, fetch, scheduler, outcomes, offsets };
}

const err = (kind: FetchError['kind'], status?: number, retryAfterMs?: number) => new FetchError(kind, `${kind} ${status ?? ''}`, status, retryAfterMs);

describe('fetch scheduler', () => {
  it('fetches on start and then every interval', async () => {
    const { timers, scheduler, outcomes, offsets } = setup();
    scheduler.start();
    scheduler.start(); // a second start changes nothing
    await settle();
    assert.deepEqual(offsets(), [0]);
    assert.equal(scheduler.state.phase, 'waiting');
    await timers.advance(45 * MIN);
    assert.deepEqual(offsets(), [0, 900, 1800, 2700]);
    assert.ok(outcomes.every((o) => o.outcome.ok && !o.manual));
  });

  it('input-driven (selfScheduled false): fetches only on a trigger, still retries a failure', async () => {
    const { timers, fetch, scheduler, outcomes, offsets } = setup(15 * MIN, false);
    scheduler.start();
    await settle();
    await timers.advance(45 * MIN);
    assert.deepEqual(offsets(), [], 'nothing on start, nothing on the interval');
    assert.equal(scheduler.state.phase, 'idle');
    await scheduler.trigger();
    assert.deepEqual(offsets(), [2700]);
    assert.equal(scheduler.state.phase, 'idle');
    await timers.advance(45 * MIN);
    assert.deepEqual(offsets(), [2700]);
    fetch.then(err('server', 503));
    await scheduler.trigger();
    assert.equal(scheduler.state.phase, 'retrying');
    await timers.advance(30_000);
    assert.deepEqual(offsets(), [2700, 5400, 5430], 'the retry after 30 s, then nothing more');
    await timers.advance(45 * MIN);
    assert.equal(fetch.calls.length, 3);
    assert.equal(scheduler.state.phase, 'idle');
    assert.deepEqual(outcomes.map((o) => o.outcome.ok), [true, false, true]);
  });

  it('retries a 5xx with backoff 30 s, 60 s, 120 s … capped at the interval, then returns to the interval', async () => {
    const { timers, fetch, scheduler, outcomes, offsets } = setup(5 * MIN);
    fetch.then(err('server', 500), err('server', 503), err('timeout'), err('network'), err('invalid_response'), err('server', 502), 7);
    scheduler.start();
    await timers.advance(60 * MIN);
    // failures at 0, 30, 90, 210, 450 (backoff 30, 60, 120, 240, then capped at 300), 750 → success at 1050, then every 300 s
    assert.deepEqual(offsets().slice(0, 9), [0, 30, 90, 210, 450, 750, 1050, 1350, 1650]);
    assert.deepEqual(outcomes.slice(0, 3).map((o) => o.state), [
      { phase: 'retrying', nextAt: outcomes[0].outcome.at + 30_000, attempt: 1 },
      { phase: 'retrying', nextAt: outcomes[1].outcome.at + 60_000, attempt: 2 },
      { phase: 'retrying', nextAt: outcomes[2].outcome.at + 120_000, attempt: 3 },
    ]);
    assert.equal(outcomes[6].state.attempt, 0, 'a success resets the backoff');
  });

  it('honours Retry-After on 429', async () => {
    const { timers, fetch, scheduler, offsets } = setup();
    fetch.then(err('rate_limited', 429, 1000), err('rate_limited', 429, 20 * MIN), 5);
    scheduler.start();
    await timers.advance(30 * MIN);
    assert.deepEqual(offsets().slice(0, 3), [0, 1, 1 + 1200]);
  });

  it('stops on a rejected key until a manual trigger, which resumes the schedule', async () => {
    const { timers, fetch, scheduler, outcomes, offsets } = setup();
    fetch.then(err('auth', 401), 5);
    scheduler.start();
    await timers.advance(60 * MIN);
    assert.deepEqual(offsets(), [0]);
    assert.equal(scheduler.state.phase, 'halted');
    assert.equal(timers.count, 0, 'no timer left');
    const outcome = await scheduler.trigger();
    assert.ok(outcome.ok);
    assert.equal(outcomes.at(-1)?.manual, true);
    await timers.advance(15 * MIN);
    assert.deepEqual(offsets(), [0, 3600, 4500]);
  });

  it('waits for the next regular fetch after another 4xx', async () => {
    const { timers, fetch, scheduler, offsets } = setup();
    fetch.then(err('client', 404));
    scheduler.start();
    await timers.advance(16 * MIN);
    assert.deepEqual(offsets(), [0, 900]);
  });

  it('a trigger fetches now and replaces a pending retry', async () => {
    const { timers, fetch, scheduler, offsets, clock } = setup();
    fetch.then(err('server', 500), 3);
    scheduler.start();
    await timers.advance(10_000);
    assert.equal(scheduler.state.phase, 'retrying');
    const outcome = await scheduler.trigger();
    assert.deepEqual(outcome.ok && outcome.value, 3);
    await timers.advance(25_000); // the old retry (at 30 s) must not fire
    assert.deepEqual(offsets(), [0, 10]);
    assert.equal(scheduler.state.nextAt, clock.now() - 25_000 + 15 * MIN);
  });

  it('never runs two fetches at once: a trigger during a fetch joins it', async () => {
    const { fetch, scheduler, clock } = setup();
    let release!: (v: number) => void;
    fetch.run = (signal) => {
      fetch.calls.push({ at: clock.now(), signal });
      return new Promise<number>((r) => (release = r));
    };
    scheduler.start();
    const a = scheduler.trigger();
    const b = scheduler.trigger();
    await settle();
    assert.equal(fetch.calls.length, 1);
    release(42);
    const [ra, rb] = await Promise.all([a, b]);
    assert.deepEqual([ra.ok && ra.value, rb.ok && rb.value], [42, 42]);
  });

  it('stop() clears the timer and aborts the fetch in flight; nothing happens after', async () => {
    const { timers, fetch, scheduler, outcomes } = setup();
    fetch.then(1, 'hang');
    scheduler.start();
    await timers.advance(15 * MIN); // the second fetch hangs
    assert.equal(fetch.calls.length, 2);
    const pending = scheduler.trigger();
    scheduler.stop();
    assert.equal(fetch.calls[1].signal.aborted, true);
    const outcome = await pending;
    assert.equal(!outcome.ok && outcome.error.kind, 'aborted');
    await timers.advance(120 * MIN);
    assert.equal(fetch.calls.length, 2);
    assert.equal(outcomes.length, 1, 'the aborted fetch is not reported');
    assert.equal(timers.count, 0);
    const late = await scheduler.trigger();
    assert.equal(!late.ok && late.error.kind, 'aborted');
    assert.equal(fetch.calls.length, 2);
  });

  it('wraps an unexpected exception as a FetchError without secrets', async () => {
    const { scheduler, fetch, outcomes } = setup();
    fetch.run = () => Promise.reject(new Error('boom at https://x/?appid=secretsecret'));
    scheduler.start();
    await settle();
    const o = outcomes[0].outcome;
    assert.equal(o.ok, false);
    assert.ok(!o.ok && o.error instanceof FetchError && !o.error.message.includes('secretsecret'));
  });
});
