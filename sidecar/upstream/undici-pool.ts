// undici's Pool and its request() alone. The package entry loads all of undici (fetch, WebSocket,
// cookies, …), about 50 ms of start-up the sidecar never uses, and only that entry attaches the request
// API to dispatchers; here it is called on the pool directly. The lockfile pins the version these paths
// belong to, and the types are undici's own.
import type { Dispatcher, Pool as UndiciPool } from 'undici';
import PoolModule from 'undici/lib/dispatcher/pool.js';
import requestModule from 'undici/lib/api/api-request.js';

export const Pool: typeof UndiciPool = PoolModule;
export type Pool = UndiciPool;

/** `pool.request(opts)` without undici's entry module. */
export function request(pool: UndiciPool, opts: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
  return requestModule.call(pool, opts);
}
