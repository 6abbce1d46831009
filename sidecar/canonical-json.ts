// One JSON text per value, whatever the order its object keys came in: what the cache keys hash and what
// groups usage records by their tags.

/** JSON with object keys sorted and no whitespace (undefined members left out, as JSON.stringify does). */
export function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += (i === 0 ? '' : ',') + canonical(v[i]);
    return `${out}]`;
  }
  const o = v as Record<string, unknown>;
  let out = '{';
  for (const k of Object.keys(o).sort()) {
    const member = o[k];
    if (member === undefined) continue;
    out += (out.length === 1 ? '' : ',') + JSON.stringify(k) + ':' + canonical(member);
  }
  return `${out}}`;
}
