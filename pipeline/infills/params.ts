import type { Params } from './types.ts';

/** Small validators for method params: values may arrive as JSON or as CLI strings ("4x4", "0.2"). */

export function checkKeys(method: string, raw: Params, allowed: readonly string[]): void {
  for (const k of Object.keys(raw)) {
    if (!allowed.includes(k)) throw new Error(`${method}: unknown parameter "${k}" (known: ${allowed.join(', ') || 'none'})`);
  }
}

export function numberParam(method: string, key: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < min || n > max) {
    throw new Error(`${method}: ${key} must be a number in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return n;
}

export function intParam(method: string, key: string, v: unknown, min: number, max: number): number {
  const n = numberParam(method, key, v, min, max);
  if (!Number.isInteger(n)) throw new Error(`${method}: ${key} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

export function enumParam<T extends string>(method: string, key: string, v: unknown, values: readonly T[]): T {
  if (typeof v !== 'string' || !values.includes(v as T)) {
    throw new Error(`${method}: ${key} must be one of ${values.join(' | ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

/** A grid as [rows, cols]: 4, "4", "4x3" (rows x cols) or [4, 3]. */
export function gridParam(method: string, key: string, v: unknown): [number, number] {
  let parts: unknown[];
  if (Array.isArray(v)) parts = v;
  else if (typeof v === 'number') parts = [v, v];
  else if (typeof v === 'string') parts = v.includes('x') ? v.split('x') : [v, v];
  else parts = [];
  if (parts.length !== 2) throw new Error(`${method}: ${key} must be N or RxC (e.g. 4x4), got ${JSON.stringify(v)}`);
  return [intParam(method, key, parts[0], 1, 4096), intParam(method, key, parts[1], 1, 4096)];
}
