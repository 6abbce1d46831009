// Kubernetes resource quantities ("100m", "0.5", "64Mi", "1G", "2e3"), parsed to compare a request with
// its limit. The grammar is the API server's (resource.Quantity): a signed decimal number and a suffix.
const SUFFIXES: Record<string, number> = {
  '': 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$/;

/** The quantity's value in base units, or undefined when it is not a valid quantity. */
export function parseQuantity(q: string): number | undefined {
  const m = QUANTITY.exec(q.trim() === q ? q : '');
  if (m === null) return undefined;
  const n = Number(m[1]);
  if (m[2] !== undefined) return n * 10 ** Number(m[2].slice(1));
  return n * SUFFIXES[m[3] ?? '']!;
}
