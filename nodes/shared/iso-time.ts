/**
 * The canonical text form of a time, as `Date.prototype.toISOString` writes it:
 * `YYYY-MM-DDTHH:MM:SS.sssZ`. Every reading leaves sensor-validate in this form, and the hot window
 * and the cold store used to parse and print it again (Date.parse + toISOString, about a
 * microsecond each, several times per reading). A string already in the form is recognised by its
 * characters instead; anything else still takes the full parse.
 */

/** The number written by `len` ASCII digits of `s` from `at`; -1 if one is not a digit. */
function digits(s: string, at: number, len: number): number {
  let v = 0;
  for (let i = at; i < at + len; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Epoch ms of `s` when it is a valid time in the canonical form (years 0100 to 9999), else NaN:
 * for such a string, `new Date(canonicalIsoMs(s)).toISOString() === s`.
 */
export function canonicalIsoMs(s: string): number {
  if (
    s.length !== 24 ||
    s.charCodeAt(4) !== 45 || // -
    s.charCodeAt(7) !== 45 ||
    s.charCodeAt(10) !== 84 || // T
    s.charCodeAt(13) !== 58 || // :
    s.charCodeAt(16) !== 58 ||
    s.charCodeAt(19) !== 46 || // .
    s.charCodeAt(23) !== 90 // Z
  ) {
    return NaN;
  }
  const year = digits(s, 0, 4);
  const month = digits(s, 5, 2);
  const day = digits(s, 8, 2);
  const hour = digits(s, 11, 2);
  const minute = digits(s, 14, 2);
  const second = digits(s, 17, 2);
  const ms = digits(s, 20, 3);
  // Years below 100 are left to the full parse (Date.UTC reads 0-99 as 1900-1999).
  if (year < 100 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return NaN;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 || ms < 0) return NaN;
  return Date.UTC(year, month - 1, day, hour, minute, second, ms);
}

/** Epoch ms of any time string Date.parse reads (the canonical form without parsing), else NaN. */
export function parseIsoMs(s: string): number {
  const t = canonicalIsoMs(s);
  return t === t ? t : Date.parse(s);
}

/** `s` itself when it is already canonical, else its canonical form; null if it is not a time. */
export function canonicalIso(s: string): string | null {
  if (!Number.isNaN(canonicalIsoMs(s))) return s;
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

const DAY_MS = 86_400_000;
/** The UTC day `isoFromEpochMs` formatted last: its first ms and its `YYYY-MM-DDT`. */
let cachedDayStart = NaN;
let cachedDayPrefix = '';

const two = (n: number) => (n < 10 ? `0${n}` : `${n}`);
const three = (n: number) => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`);

/**
 * `new Date(ms).toISOString()` for a whole number of ms, without a Date per call when the time is
 * on the same UTC day as the previous call's (a window's entries, a batch of readings): the day's
 * `YYYY-MM-DDT` is kept and the time of day is written from integer arithmetic, about a seventh
 * of toISOString's cost. Anything else (another day, a fraction of a ms, a year outside 0000 to
 * 9999, an invalid time, which throws RangeError as toISOString does) takes toISOString.
 */
export function isoFromEpochMs(ms: number): string {
  let rest = ms - cachedDayStart; // ms into the kept day (NaN before the first call)
  if (!(rest >= 0 && rest < DAY_MS && Number.isInteger(ms))) {
    const text = new Date(ms).toISOString();
    if (text.length === 24 && Number.isInteger(ms)) {
      cachedDayStart = Math.floor(ms / DAY_MS) * DAY_MS;
      cachedDayPrefix = text.slice(0, 11);
    }
    return text;
  }
  const hour = Math.floor(rest / 3_600_000);
  rest -= hour * 3_600_000;
  const minute = Math.floor(rest / 60_000);
  rest -= minute * 60_000;
  const second = Math.floor(rest / 1000);
  return `${cachedDayPrefix}${two(hour)}:${two(minute)}:${two(second)}.${three(rest - second * 1000)}Z`;
}
