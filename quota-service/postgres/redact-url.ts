// A PostgreSQL connection string as it may be shown: its password (in the URL or a password query
// parameter) replaced by ***, and text scrubbed of the secret parts of one, for messages and logs.

const SECRET_PARAMS = ['password', 'sslpassword'];

/** `postgres://user:***@host:5432/db`; a string that does not parse as a URL is shown as `postgres://***`. */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'postgres://***';
  }
  if (u.password !== '') u.password = '***';
  for (const p of SECRET_PARAMS) if (u.searchParams.has(p)) u.searchParams.set(p, '***');
  // URLSearchParams encodes * as %2A: shown as typed.
  return u.toString().replaceAll('%2A%2A%2A', '***');
}

/** `text` with every occurrence of `url`, and of the secrets it holds (raw or percent-decoded), redacted. */
export function scrubUrl(text: string, url: string): string {
  let out = text.replaceAll(url, redactUrl(url));
  for (const secret of secretsOf(url)) out = out.replaceAll(secret, '***');
  return out;
}

function secretsOf(url: string): string[] {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Unparseable: nothing can be picked out of it, so the whole of it is the secret.
    return [url];
  }
  const raw = [u.password, ...SECRET_PARAMS.map((p) => u.searchParams.get(p) ?? '')];
  const all = raw.flatMap((s) => [s, safeDecode(s)]);
  // Longest first, so a secret containing another is replaced whole; short ones would redact ordinary text.
  return [...new Set(all)].filter((s) => s.length >= 3).sort((a, b) => b.length - a.length);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
