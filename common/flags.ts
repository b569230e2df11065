import { UserError } from '../manifests/errors.ts';

/**
 * One validator for every command-line flag, in the spirit of sharp's `is.*` and
 * `invalidParameterError(name, expected, actual)`: each check states what was allowed and what was given, so
 * `--workers 1000` says "an integer from 1 to 256", not "must be ≥ 1".
 */

/** A flag value outside what the flag accepts; exits with status 2 like every usage error. */
export class InvalidParameterError extends UserError {
  readonly parameter: string;
  readonly expected: string;
  readonly actual: unknown;
  constructor(parameter: string, expected: string, actual: unknown, fix?: string) {
    super(`${parameter}: expected ${expected}, got ${show(actual)}`, fix ? { fix } : {});
    this.name = 'InvalidParameterError';
    this.parameter = parameter;
    this.expected = expected;
    this.actual = actual;
  }
}

/** The error for parameter `name`, which should have been `expected` but was `actual`. */
export function invalidParameterError(name: string, expected: string, actual: unknown, fix?: string): InvalidParameterError {
  return new InvalidParameterError(name, expected, actual, fix);
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  try { return JSON.stringify(v); } catch { return String(v); }
}

/** Type and range predicates. */
export const is = {
  defined: (v: unknown): boolean => v !== undefined && v !== null,
  string: (v: unknown): v is string => typeof v === 'string',
  number: (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v),
  integer: (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v),
  inRange: (v: number, r: Range): boolean =>
    (r.min === undefined || (r.minExclusive ? v > r.min : v >= r.min)) && (r.max === undefined || (r.maxExclusive ? v < r.max : v <= r.max)),
  inArray: <T>(v: T, list: readonly T[]): boolean => list.includes(v),
};

/** Bounds of a numeric flag; both ends inclusive unless marked exclusive. */
export interface Range {
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
}

/** "an integer from 1 to 256", "a number > 0", "an integer ≥ 0": the allowed set in words. */
export function describeRange(kind: 'integer' | 'number', r: Range = {}): string {
  const a = kind === 'integer' ? 'an integer' : 'a number';
  const lo = r.min === undefined ? null : `${r.minExclusive ? '>' : '≥'} ${r.min}`;
  const hi = r.max === undefined ? null : `${r.maxExclusive ? '<' : '≤'} ${r.max}`;
  if (lo && hi) {
    if (!r.minExclusive && !r.maxExclusive) return `${a} from ${r.min} to ${r.max}`;
    return `${a} ${lo} and ${hi}`;
  }
  return lo ? `${a} ${lo}` : hi ? `${a} ${hi}` : a;
}

// Number('') is 0 and Number(' 1 ') is 1: accept only what a person would write as a number.
const NUMBER_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** Parse `raw` as a number of the given kind within `range`, or throw naming the flag and the allowed range. */
export function parseNumber(name: string, raw: string | number, kind: 'integer' | 'number', range: Range = {}): number {
  const expected = describeRange(kind, range);
  const v = typeof raw === 'number' ? raw : NUMBER_TEXT.test(raw.trim()) ? Number(raw) : NaN;
  if (!is.number(v) || (kind === 'integer' && !is.integer(v)) || !is.inRange(v, range)) throw invalidParameterError(name, expected, raw);
  return v;
}

/** `raw` as an integer within `range`. */
export function parseInteger(name: string, raw: string | number, range: Range = {}): number {
  return parseNumber(name, raw, 'integer', range);
}

/** `raw` as one of `choices`. */
export function parseChoice<T extends string>(name: string, raw: string, choices: readonly T[]): T {
  if (!is.inArray(raw as T, choices)) throw invalidParameterError(name, `one of ${choices.join(', ')}`, raw);
  return raw as T;
}

/**
 * A comma-separated list: items trimmed, empty items dropped, duplicates refused. With `choices`, every item must be
 * one of them; with `nonEmpty`, at least one item is required.
 */
export function parseList<T extends string = string>(name: string, raw: string, opts: { choices?: readonly T[]; nonEmpty?: boolean } = {}): T[] {
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (opts.nonEmpty && !items.length) throw invalidParameterError(name, 'a comma-separated list of at least one item', raw);
  const seen = new Set<string>();
  for (const it of items) {
    if (opts.choices && !opts.choices.includes(it as T)) {
      throw invalidParameterError(name, `a comma-separated list of ${opts.choices.join(', ')}`, raw, `"${it}" is not one of them`);
    }
    if (seen.has(it)) throw invalidParameterError(name, 'a comma-separated list without repeats', raw, `"${it}" appears twice`);
    seen.add(it);
  }
  return items as T[];
}

/** Commander argument parsers built on the checks above: `.option('--workers <n>', '…', intFlag('--workers', { min: 1, max: 256 }), 1)`. */
export const intFlag = (name: string, range: Range = {}) => (v: string): number => parseInteger(name, v, range);
export const numberFlag = (name: string, range: Range = {}) => (v: string): number => parseNumber(name, v, 'number', range);
export const choiceFlag = <T extends string>(name: string, choices: readonly T[]) => (v: string): T => parseChoice(name, v, choices);
export const listFlag = <T extends string = string>(name: string, opts: { choices?: readonly T[]; nonEmpty?: boolean } = {}) =>
  (v: string): T[] => parseList(name, v, opts);
