import { readFile } from 'node:fs/promises';
import { UserError } from '../../manifests/errors.ts';

/**
 * Python's json.dump writes bare NaN / Infinity, which JSON.parse refuses; the real CCT annotation files contain
 * them in `bbox`. Outside string literals they become null (a missing value), inside strings they are left alone.
 */
export function replaceBareNonFinite(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    const m = /^-?(NaN|Infinity)/.exec(text.slice(i, i + 9));
    if (m) { out += 'null'; i += m[0].length; continue; }
    out += ch;
    i++;
  }
  return out;
}

export async function readJsonFile(file: string, fixIfMissing?: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new UserError('file not found', { file, fix: fixIfMissing });
  }
  try {
    return JSON.parse(text);
  } catch {
    try {
      return JSON.parse(replaceBareNonFinite(text));
    } catch (e) {
      throw new UserError(`malformed JSON (${(e as Error).message})`, { file, fix: 'repair or re-download the file' });
    }
  }
}

/** Typed field access that names the JSON path of anything missing. */
export class JsonFields {
  constructor(readonly file: string, readonly fix: string) {}

  fail(path: string, what: string): never {
    throw new UserError(`${path}: ${what}`, { file: this.file, fix: this.fix });
  }

  array(obj: unknown, key: string, path: string): unknown[] {
    const v = this.field(obj, key, path);
    if (!Array.isArray(v)) this.fail(`${path}${key}`, `expected an array, found ${typeof v}`);
    return v;
  }

  field(obj: unknown, key: string, path: string): unknown {
    if (!obj || typeof obj !== 'object' || !(key in obj) || (obj as Record<string, unknown>)[key] === null) {
      this.fail(`${path}${key}`, 'missing field');
    }
    return (obj as Record<string, unknown>)[key];
  }

  string(obj: unknown, key: string, path: string): string {
    const v = this.field(obj, key, path);
    if (typeof v !== 'string' || !v) this.fail(`${path}${key}`, `expected a non-empty string, found ${JSON.stringify(v)}`);
    return v;
  }

  id(obj: unknown, key: string, path: string): string {
    const v = this.field(obj, key, path);
    if (typeof v !== 'string' && typeof v !== 'number') this.fail(`${path}${key}`, `expected a string or number id, found ${JSON.stringify(v)}`);
    return String(v);
  }

  positive(obj: unknown, key: string, path: string): number {
    const v = this.field(obj, key, path);
    if (typeof v !== 'number' || !(v > 0)) this.fail(`${path}${key}`, `expected a positive number, found ${JSON.stringify(v)}`);
    return v;
  }
}
