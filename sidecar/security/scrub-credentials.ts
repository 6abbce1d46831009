// Removes credentials from text that came from a provider (error bodies, error events, headers) before an
// app or a log sees it: the configured keys, their masked echoes, and strings shaped like API keys.
// Pure; text holding no credential costs one regex scan and comes back as it was. The replacement holds
// no quote or backslash, so JSON text stays JSON.

/** What every credential is replaced with. */
export const REDACTED = '[redacted]';

/** Configured secrets shorter than this are ignored: they could be ordinary words. */
const MIN_SECRET_LENGTH = 8;

/** `word` matching either case, letter by letter (Node 20's RegExp has no inline `(?i:)`). */
const anyCase = (word: string): string => word.replace(/[a-z]/gi, (c) => `[${c.toLowerCase()}${c.toUpperCase()}]`);

// A token starts where no letter or digit precedes it, or right after a JSON escape (`\n`, `\t`…), so
// `"…\nsk-…"` inside JSON text is caught as well. The check is a lookbehind placed after the token's
// literal prefix: the engine then only looks back where the prefix matched, which keeps the scan of text
// holding no credential near a plain substring search (≈1 µs per KiB).
const BOUNDARY = String.raw`(?:^|[^A-Za-z0-9]|\\[nrtbf])`;
const prefix = (literal: string): string => `${literal}(?<=${BOUNDARY}${literal})`;
// A key/value echo's value: up to a quote, backslash, space or separator, so a JSON string is never cut open.
const VALUE = String.raw`[^\s"'\\,;&<>(){}\[\]]{8,}`;

/**
 * Every shape, one alternative each. Group 1 (key/value echoes) and group 2 (`Bearer `) are kept in front
 * of the marker; any other match is replaced whole.
 */
const SHAPES = new RegExp(
  [
    // api_key=…, "apiKey": "…", x-api-key: …, API key: …
    String.raw`(${prefix(anyCase('api'))}[_\- ]?${anyCase('key')}(?:\\?["'])?\s*[:=]\s*(?:\\?["'])?)${VALUE}`,
    // Authorization: Bearer …
    String.raw`(${prefix(anyCase('bearer'))}\s+)[A-Za-z0-9\-._~+/*…]{8,}=*`,
    // OpenAI sk-, sk-proj-, sk-svcacct-; Anthropic sk-ant-api03-, sk-ant-admin01-. Masked echoes
    // (sk-proj-abc****xyz, sk-abc...xyz, sk-abc…xyz) whatever their length, else 8 characters at least;
    // a sentence's final period is left out of the token.
    String.raw`${prefix('sk-')}(?:[A-Za-z0-9_\-]*(?:\*+|\.{2,}|…)[A-Za-z0-9_\-*.…]*[A-Za-z0-9_\-*…]|[A-Za-z0-9_\-*.…]{7,}[A-Za-z0-9_\-*…])`,
    // Google
    String.raw`${prefix('AIza')}[0-9A-Za-z_\-]{30,}`,
    // Groq, xAI, Hugging Face
    String.raw`${prefix('(?:gsk_|xai-|hf_)')}[A-Za-z0-9*]{20,}`,
    // AWS access key ids (long-lived and temporary)
    String.raw`${prefix('(?:AKIA|ASIA)')}[0-9A-Z]{16}(?![0-9A-Za-z])`,
  ].join('|'),
  'g',
);

const redactShape = (_match: string, keyValue: string | undefined, bearer: string | undefined): string =>
  (keyValue ?? bearer ?? '') + REDACTED;

/** What JSON.stringify escapes in a string (besides lone surrogates). */
const NEEDS_JSON_ESCAPE = /["\\\u0000-\u001f]/;

/** The mask of a masked echo (`abcd****wxyz`, `abcd...wxyz`, `abcd…`); its head and tail are read around it. */
const MASK = /\*{2,}|\.{2,}|…/g;
const HAS_MASK = /\*\*|\.\.|…/;

/**
 * `text` with credentials replaced by `[redacted]`: each of `secrets` (8 characters or more) wherever it
 * occurs, masked echoes of them (a prefix of the key, `***`/`...`/`…`, a suffix), and key-shaped strings
 * (`sk-…`, `Bearer …`, `api_key: …`, `AIza…`, `gsk_…`, `xai-…`, `hf_…`, `AKIA…`). Returns `text` itself
 * when nothing matched.
 */
export function scrubCredentials(text: string, secrets: readonly string[]): string {
  if (text.length < MIN_SECRET_LENGTH) return text;
  let out = text;
  let configured = false;
  for (const secret of secrets) {
    if (secret.length < MIN_SECRET_LENGTH) continue;
    configured = true;
    out = replaceSecret(out, secret);
    // In JSON text a key holding a quote, a backslash or a control character appears escaped.
    if (NEEDS_JSON_ESCAPE.test(secret)) out = replaceSecret(out, JSON.stringify(secret).slice(1, -1));
  }
  out = out.replace(SHAPES, redactShape);
  if (configured && HAS_MASK.test(out)) {
    out = replaceEchoes(out, secrets);
  }
  return out;
}

/** Every occurrence of `secret` in `text`; one right after a JSON escape's backslash takes the backslash too. */
function replaceSecret(text: string, secret: string): string {
  let at = text.indexOf(secret);
  if (at === -1) return text;
  let out = '';
  let from = 0;
  while (at !== -1) {
    let start = at;
    let slashes = 0;
    while (start - slashes > from && text.charCodeAt(start - slashes - 1) === 0x5c) slashes++;
    if (slashes % 2 === 1) start -= 1;
    out += text.slice(from, start) + REDACTED;
    from = at + secret.length;
    at = text.indexOf(secret, from);
  }
  return out + text.slice(from);
}

/** Masked echoes of the secrets: a prefix of one, the mask, then a suffix of it (or nothing). */
function replaceEchoes(text: string, secrets: readonly string[]): string {
  let out = '';
  let from = 0;
  for (const m of text.matchAll(MASK)) {
    let start = m.index;
    while (start > from && isKeyChar(text.charCodeAt(start - 1))) start--;
    const after = m.index + m[0].length;
    let end = after;
    while (end < text.length && isKeyChar(text.charCodeAt(end))) end++;
    const echo = echoOf(text.slice(start, m.index), text.slice(after, end), secrets);
    if (echo === undefined) continue;
    out += text.slice(from, m.index - echo.head) + REDACTED;
    from = after + echo.tail;
  }
  return from === 0 ? text : out + text.slice(from);
}

/** A character of an API key: letters, digits, `_ - + / =`. */
function isKeyChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x2d || c === 0x2b || c === 0x2f || c === 0x3d;
}

/**
 * How much of `before` (its end) and of `after` (its start) show a secret's first and last characters:
 * 3 of its first at least and 6 in all, but never the whole secret.
 */
function echoOf(before: string, after: string, secrets: readonly string[]): { head: number; tail: number } | undefined {
  for (const s of secrets) {
    if (s.length < MIN_SECRET_LENGTH) continue;
    let head = Math.min(before.length, s.length - 1);
    while (head >= 3 && !before.endsWith(s.slice(0, head))) head--;
    if (head < 3) continue;
    let tail = Math.min(after.length, s.length - 1 - head);
    while (tail > 0 && !after.startsWith(s.slice(s.length - tail))) tail--;
    if (head + tail >= 6) return { head, tail };
  }
  return undefined;
}
