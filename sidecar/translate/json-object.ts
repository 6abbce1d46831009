// Narrowing helpers for request bodies that arrive as untyped JSON.
import { invalidRequest } from '../../common/errors.js';
import { isObject, type Json } from '../../common/json.js';

export function asObject(v: unknown, param: string): Json {
  if (!isObject(v)) throw invalidRequest(`${param} must be an object`, param);
  return v;
}

export function asArray(v: unknown, param: string): unknown[] {
  if (!Array.isArray(v)) throw invalidRequest(`${param} must be an array`, param);
  return v;
}

export function asString(v: unknown, param: string): string {
  if (typeof v !== 'string') throw invalidRequest(`${param} must be a string`, param);
  return v;
}

/** Copies `keys` of `from` that are present (not undefined or null) onto `to`. */
export function copyKeys(from: Json, to: Json, keys: readonly string[]): void {
  for (const k of keys) if (from[k] !== undefined && from[k] !== null) to[k] = from[k];
}
