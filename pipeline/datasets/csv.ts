import { parse } from 'csv-parse';
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { UserError } from '../../manifests/errors.ts';

export interface CsvRecord {
  /** 1-based line number in the file (the header is line 1), for error messages */
  line: number;
  values: Record<string, string>;
}

/**
 * The records of a headed CSV, one at a time (a 100k-line boxes.csv read whole was ~80 MB of heap as string arrays
 * and objects). Checks that the header has every required column. A missing file or column, or a malformed line, is
 * a structural problem: UserError naming the file (and line), what is wrong and the columns we expect.
 */
export async function* streamCsv(file: string, required: readonly string[]): AsyncGenerator<CsvRecord> {
  try {
    await access(file);
  } catch {
    throw new UserError('file not found', { file, fix: `create it with the header: ${required.join(',')}` });
  }
  const parser = createReadStream(file).pipe(parse({ bom: true, skip_empty_lines: true, trim: true, relax_column_count: false }));
  let header: string[] | null = null;
  let line = 1;
  try {
    for await (const cells of parser as AsyncIterable<string[]>) {
      if (!header) {
        header = cells;
        const missing = required.filter((c) => !cells.includes(c));
        if (missing.length) {
          throw new UserError(`missing column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')} (header has: ${cells.join(',')})`, {
            file, fix: `the header must have the columns: ${required.join(',')}`,
          });
        }
        continue;
      }
      const values: Record<string, string> = {};
      header.forEach((h, j) => { values[h] = cells[j]; });
      yield { line: ++line, values };
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    const at = (e as { lines?: number }).lines;
    throw new UserError(`malformed CSV (${(e as Error).message})`, { file, row: at, fix: 'fix the quoting / number of fields on that line' });
  } finally {
    parser.destroy();
  }
  if (!header) throw new UserError('empty CSV: no header line', { file, fix: `the first line must be the header: ${required.join(',')}` });
}

/** Every record of a headed CSV (see streamCsv). */
export async function readCsv(file: string, required: readonly string[]): Promise<{ records: CsvRecord[] }> {
  const records: CsvRecord[] = [];
  for await (const r of streamCsv(file, required)) records.push(r);
  return { records };
}

/** An integer cell, or null when it is not one. */
export function intCell(s: string | undefined): number | null {
  if (s === undefined || !/^[+-]?\d+$/.test(s.trim())) return null;
  return Number(s);
}
