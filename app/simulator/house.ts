/**
 * The simulated house behind the Pi's sensors: what each sensor reads at time t in a location,
 * as pure functions of (seed, location, t). Nothing here keeps time or does IO, so tests can ask
 * for noon and midnight of any day, and two runs with the same seed read the same values.
 *
 * The model, kept simple but coherent:
 * - Daylight follows the sun (up 06:00 to 18:00 local, as near the equator where the default
 *   location is), dimmed by passing clouds under a cloudiness that changes from day to day; the
 *   room's lights add lux when they are on.
 * - The load is a standby base plus appliances that are each on or off for whole slots of time
 *   (a fridge cycles every few minutes, a kettle boils for three, a TV runs for half an hour),
 *   with chances by hour of day: the current moves in steps, as a real clamp meter shows.
 * - The grid voltage wanders around 230 V, dips in the evening peak and under the house's own
 *   load, and now and then sags for a few seconds (shared by all rooms: one feeder).
 * - Power is V×I of the same instant; energy integrates that power second by second from the
 *   meter's epoch (so it only grows).
 * - Temperature swings daily (coolest 03:00, warmest 15:00) on a weather drift; humidity moves
 *   the other way, clamped to 0..100.
 */
import { DEFAULT_UNITS } from '../../nodes/shared/types';
import { hashString, signed, smoothNoise, uniform } from './random';

export const SENSOR_TYPES = ['ldr', 'current', 'voltage', 'temperature', 'humidity', 'power', 'energy'] as const;
export type SensorType = (typeof SENSOR_TYPES)[number];

export function isSensorType(s: string): s is SensorType {
  return (SENSOR_TYPES as readonly string[]).includes(s);
}

/** The unit each simulated type is published with (the contract's defaults). */
export function unitOf(type: SensorType): string {
  return DEFAULT_UNITS[type];
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const NOMINAL_VOLTAGE = 230;
/** Energy is integrated second by second; one call may integrate at most this much new time. */
export const MAX_ENERGY_GAP_MS = 31 * DAY;

export interface Appliance {
  name: string;
  watts: number;
  /** On or off for whole slots of this length. */
  slotMinutes: number;
  /** The chance of being on in a slot, by local hour of day (0 to 24). */
  chance: (hour: number) => number;
}

const between = (h: number, from: number, to: number): boolean => h >= from && h < to;

/** Nobody switches lights on while asleep (00:00 to 05:00): a dark night stays dark. */
const lights = (watts: number): Appliance => ({
  name: 'lights',
  watts,
  slotMinutes: 15,
  chance: (h) => (between(h, 18, 23) ? 0.9 : between(h, 23, 24) ? 0.3 : between(h, 5, 7) ? 0.4 : between(h, 7, 18) ? 0.05 : 0),
});

const fan: Appliance = {
  name: 'fan',
  watts: 75,
  slotMinutes: 20,
  chance: (h) => (between(h, 11, 23) ? 0.5 : between(h, 7, 11) ? 0.2 : 0.6),
};

/** Appliances per location name; other locations get `default`. */
export const APPLIANCES: Readonly<Record<string, readonly Appliance[]>> = Object.freeze({
  living_room: [
    lights(60),
    { name: 'tv', watts: 110, slotMinutes: 30, chance: (h) => (between(h, 19, 23) ? 0.7 : between(h, 7, 9) ? 0.2 : between(h, 12, 19) ? 0.15 : 0) },
    fan,
    { name: 'air_conditioner', watts: 1400, slotMinutes: 20, chance: (h) => (between(h, 13, 17) ? 0.35 : between(h, 21, 24) ? 0.25 : 0.03) },
  ],
  kitchen: [
    lights(40),
    { name: 'fridge', watts: 150, slotMinutes: 6, chance: () => 0.45 },
    { name: 'kettle', watts: 1800, slotMinutes: 3, chance: (h) => (between(h, 6, 9) ? 0.12 : between(h, 16, 18) ? 0.08 : 0.01) },
    { name: 'microwave', watts: 1100, slotMinutes: 2, chance: (h) => (between(h, 7, 9) || between(h, 12, 14) || between(h, 19, 21) ? 0.1 : 0.005) },
    { name: 'induction_hob', watts: 1500, slotMinutes: 10, chance: (h) => (between(h, 7, 9) ? 0.35 : between(h, 12, 13) ? 0.3 : between(h, 19, 21) ? 0.4 : 0.01) },
  ],
  default: [
    lights(50),
    fan,
    { name: 'socket', watts: 200, slotMinutes: 30, chance: (h) => (between(h, 8, 22) ? 0.25 : 0.05) },
  ],
});

interface PlacedAppliance extends Appliance {
  key: number;
  slotMs: number;
  /** Slot boundaries are shifted per appliance so that switchings do not line up. */
  phaseMs: number;
}

interface LocationProfile {
  appliances: PlacedAppliance[];
  /** Routers, chargers, standby: the base load. */
  standbyWatts: number;
  /** Daylight at the sensor at noon under a clear sky. */
  peakLux: number;
  lampLux: number;
  /** °C above the house's mean (a kitchen is warmer). */
  warmer: number;
  /** Percentage points of humidity above the house's (a kitchen's steam). */
  damper: number;
  /** Volts lost per ampere on the room's circuit. */
  wiringOhms: number;
  key: number;
}

// Keys of the independent random streams.
const K = {
  cloudDay: hashString('cloud-day'),
  cloud: hashString('cloud'),
  grid: hashString('grid'),
  sag: hashString('sag'),
  sagAt: hashString('sag-at'),
  sagLength: hashString('sag-length'),
  sagDepth: hashString('sag-depth'),
  weather: hashString('weather'),
  humid: hashString('humid'),
  profile: hashString('profile'),
  ldr: hashString('ldr'),
  dark: hashString('dark'),
  lamp: hashString('lamp'),
  current: hashString('current'),
  voltage: hashString('voltage'),
  temperature: hashString('temperature'),
  humidity: hashString('humidity'),
};

export interface HouseOptions {
  seed: number;
  /** Local time = UTC + this; days and nights follow local time. */
  utcOffsetMinutes?: number;
  /** The energy meter reads `energyStartWh` at this time (ms) and counts up from there. */
  energyEpoch: number;
  energyStartWh?: number;
}

/** Rounds to `digits` decimals, as a Pi would print a reading. */
export function roundTo(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export class House {
  readonly seed: number;
  readonly utcOffsetMinutes: number;
  readonly energyEpoch: number;
  readonly energyStartWh: number;
  private readonly profiles = new Map<string, LocationProfile>();
  /** Per location: energy of the whole seconds integrated so far (a cache; results do not depend on it). */
  private readonly meters = new Map<string, { steps: number; wh: number }>();

  constructor(opts: HouseOptions) {
    this.seed = opts.seed >>> 0;
    this.utcOffsetMinutes = opts.utcOffsetMinutes ?? 0;
    this.energyEpoch = opts.energyEpoch;
    this.energyStartWh = opts.energyStartWh ?? 0;
  }

  /** Local hour of day, 0 (inclusive) to 24 (exclusive), with fractions. */
  localHour(t: number): number {
    const local = t + this.utcOffsetMinutes * MINUTE;
    return (((local % DAY) + DAY) % DAY) / HOUR;
  }

  private profile(location: string): LocationProfile {
    let p = this.profiles.get(location);
    if (p) return p;
    const key = hashString(location);
    const u = (i: number) => uniform(this.seed, K.profile ^ key, i);
    const appliances = (APPLIANCES[location] ?? APPLIANCES.default).map((a, i) => {
      const slotMs = a.slotMinutes * MINUTE;
      return { ...a, key: hashString(`${location}/${a.name}`), slotMs, phaseMs: Math.floor(u(10 + i) * slotMs) };
    });
    const kitchen = location === 'kitchen';
    p = {
      appliances,
      standbyWatts: 30 + 50 * u(1),
      peakLux: (kitchen ? 550 : location === 'living_room' ? 850 : 700) * (0.85 + 0.3 * u(2)),
      lampLux: 150 + 100 * u(3),
      warmer: kitchen ? 1.5 : (u(4) * 2 - 1) * 0.8,
      damper: kitchen ? 6 : 0,
      wiringOhms: 0.1 + 0.1 * u(5),
      key,
    };
    this.profiles.set(location, p);
    return p;
  }

  // ---- light -----------------------------------------------------------------------------------

  /** The sun's strength, 0 at night to 1 at noon. */
  sun(t: number): number {
    const h = this.localHour(t);
    return h > 6 && h < 18 ? Math.sin((Math.PI * (h - 6)) / 12) : 0;
  }

  /** Cloud cover, 0 (clear) to 1 (overcast): one sky over every room. */
  cloudCover(t: number): number {
    const dayCloudiness = smoothNoise(this.seed, K.cloudDay, t / DAY);
    const passing = smoothNoise(this.seed, K.cloud, t / (12 * MINUTE)) - 0.5;
    return Math.min(1, Math.max(0, dayCloudiness * 1.3 - 0.3 + passing * 0.9));
  }

  /** LDR reading in lux: daylight through clouds, plus the room's lights, plus sensor noise; never negative. */
  ldr(location: string, t: number): number {
    const p = this.profile(location);
    const daylight = p.peakLux * Math.pow(this.sun(t), 1.2) * (1 - 0.75 * this.cloudCover(t));
    const lamp = this.isOn(location, 'lights', t) ? p.lampLux * (1 + 0.02 * signed(this.seed, K.lamp ^ p.key, t)) : 0;
    const dark = 0.3 * uniform(this.seed, K.dark ^ p.key, t);
    return Math.max(0, daylight * (1 + 0.03 * signed(this.seed, K.ldr ^ p.key, t)) + lamp + dark);
  }

  // ---- load ------------------------------------------------------------------------------------

  private applianceOn(a: PlacedAppliance, t: number): boolean {
    const slot = Math.floor((t + a.phaseMs) / a.slotMs);
    const slotStart = slot * a.slotMs - a.phaseMs;
    return uniform(this.seed, a.key, slot) < a.chance(this.localHour(slotStart));
  }

  private isOn(location: string, name: string, t: number): boolean {
    const a = this.profile(location).appliances.find((x) => x.name === name);
    return a !== undefined && this.applianceOn(a, t);
  }

  /** Names of the appliances that are on in `location` at `t`. */
  appliancesOn(location: string, t: number): string[] {
    return this.profile(location)
      .appliances.filter((a) => this.applianceOn(a, t))
      .map((a) => a.name);
  }

  /** The load in watts (standby plus the appliances that are on), without measurement noise. */
  loadWatts(location: string, t: number): number {
    const p = this.profile(location);
    let w = p.standbyWatts;
    for (const a of p.appliances) if (this.applianceOn(a, t)) w += a.watts;
    return w;
  }

  /** Current in amperes: the load at nominal voltage, plus 1.5 % measurement noise; never negative. */
  current(location: string, t: number): number {
    const p = this.profile(location);
    const amps = this.loadWatts(location, t) / NOMINAL_VOLTAGE;
    return Math.max(0, amps * (1 + 0.015 * signed(this.seed, K.current ^ p.key, t)));
  }

  // ---- voltage ---------------------------------------------------------------------------------

  /** Depth in volts of the grid sag in progress at `t`, or 0. About one sag in ten 10-minute slots. */
  sagDepth(t: number): number {
    const slotMs = 10 * MINUTE;
    const slot = Math.floor(t / slotMs);
    if (uniform(this.seed, K.sag, slot) >= 0.1) return 0;
    const start = slot * slotMs + uniform(this.seed, K.sagAt, slot) * (slotMs - 10 * SECOND);
    const length = 2 * SECOND + uniform(this.seed, K.sagLength, slot) * 8 * SECOND;
    return t >= start && t < start + length ? 12 + 20 * uniform(this.seed, K.sagDepth, slot) : 0;
  }

  /** Voltage in volts: ~230 wandering ±4 V, lower in the evening peak and under load, sags now and then. */
  voltage(location: string, t: number): number {
    const p = this.profile(location);
    const h = this.localHour(t);
    const grid = NOMINAL_VOLTAGE + (smoothNoise(this.seed, K.grid, t / (20 * MINUTE)) - 0.5) * 8 - (between(h, 18, 22) ? 2.5 : 0);
    const drop = (this.loadWatts(location, t) / NOMINAL_VOLTAGE) * p.wiringOhms;
    return grid - drop - this.sagDepth(t) + 0.4 * signed(this.seed, K.voltage ^ p.key, t);
  }

  /** Power in watts: V×I at the same instant. */
  power(location: string, t: number): number {
    return this.voltage(location, t) * this.current(location, t);
  }

  /**
   * Energy in Wh since the epoch: power integrated over whole seconds (each second at the power of
   * its start), plus the part of the current second. Grows with t; a pure function of t.
   */
  energy(location: string, t: number): number {
    if (t <= this.energyEpoch) return this.energyStartWh;
    const elapsed = t - this.energyEpoch;
    const steps = Math.floor(elapsed / SECOND);
    let m = this.meters.get(location);
    if (!m || m.steps > steps) m = { steps: 0, wh: this.energyStartWh };
    if ((steps - m.steps) * SECOND > MAX_ENERGY_GAP_MS) {
      throw new RangeError(`energy: cannot integrate more than ${MAX_ENERGY_GAP_MS / DAY} days at once`);
    }
    for (; m.steps < steps; m.steps++) m.wh += this.power(location, this.energyEpoch + m.steps * SECOND) / 3600;
    this.meters.set(location, m);
    const partial = ((elapsed - steps * SECOND) / SECOND) * (this.power(location, this.energyEpoch + steps * SECOND) / 3600);
    return m.wh + partial;
  }

  // ---- climate ---------------------------------------------------------------------------------

  /** Temperature without sensor noise: daily swing (03:00 coolest, 15:00 warmest) on a weather drift. */
  private airTemperature(p: LocationProfile, t: number): number {
    const daily = 3.5 * Math.cos((2 * Math.PI * (this.localHour(t) - 15)) / 24);
    const weather = (smoothNoise(this.seed, K.weather, t / (8 * HOUR)) - 0.5) * 4;
    return 24 + p.warmer + daily + weather;
  }

  /** Temperature in °C. */
  temperature(location: string, t: number): number {
    const p = this.profile(location);
    return this.airTemperature(p, t) + 0.05 * signed(this.seed, K.temperature ^ p.key, t);
  }

  /** Relative humidity in %: falls as the air warms, drifts, clamped to 0..100. */
  humidity(location: string, t: number): number {
    const p = this.profile(location);
    const warmth = this.airTemperature(p, t) - 24 - p.warmer;
    const drift = (smoothNoise(this.seed, K.humid, t / (3 * HOUR)) - 0.5) * 8;
    const h = 58 - 3 * warmth + drift + p.damper + 0.3 * signed(this.seed, K.humidity ^ p.key, t);
    return Math.min(100, Math.max(0, h));
  }

  // ---- readings --------------------------------------------------------------------------------

  /** The value a sensor of `type` in `location` reports at `t`, rounded as the Pi prints it. */
  value(type: SensorType, location: string, t: number): number {
    switch (type) {
      case 'ldr':
        return roundTo(this.ldr(location, t), 1);
      case 'current':
        return roundTo(this.current(location, t), 3);
      case 'voltage':
        return roundTo(this.voltage(location, t), 1);
      case 'power':
        return roundTo(this.power(location, t), 1);
      case 'energy':
        return roundTo(this.energy(location, t), 3);
      case 'temperature':
        return roundTo(this.temperature(location, t), 2);
      case 'humidity':
        return roundTo(this.humidity(location, t), 1);
    }
  }
}
