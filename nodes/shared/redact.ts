/**
 * Passwords out of what we log and show: the one place that knows how to hide them in URLs.
 */

/** `mqtt://user:pass@host:1883` → `mqtt://user:***@host:1883`; a text that is no URL is masked by pattern. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    const out = u.toString();
    // WHATWG adds a path `/` to some URLs; keep the text as the user wrote it.
    return !raw.endsWith('/') && out.endsWith('/') ? out.slice(0, -1) : out;
  } catch {
    return maskUrlsIn(raw);
  }
}

/** Hides the password of every URL quoted in `text` (driver messages, logs): `postgres://u:***@host/db`. */
export function maskUrlsIn(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:@/\s]*:)[^@/\s]*@/gi, '$1***@');
}
