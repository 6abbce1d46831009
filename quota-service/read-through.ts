// The quota service's in-memory caches of what its store holds (window totals, report sequences, owners).

/**
 * A value from a cache of the store, read from the store on a miss. The store is always written first,
 * so the cache may be dropped at any time: past 100,000 keys (windows, and every new pod's incarnations
 * keep adding them) it starts again empty.
 */
export function readThrough<T>(cache: Map<string, T>, key: string, load: () => T): T {
  let v = cache.get(key);
  if (v === undefined) {
    if (cache.size >= 100_000) cache.clear();
    v = load();
    cache.set(key, v);
  }
  return v;
}
