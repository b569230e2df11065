import { parse } from 'csv-parse/sync';
import { readFile } from 'node:fs/promises';
import { UserError } from '../../manifests/errors.ts';

export interface CsvRecord {
  /** 1-based line number in the file (the header is line 1), for error messages */
  line: number;
  values: Record<string, string>;
}

/**
 * Read a headed CSV and check it has every required column. A missing column or a malformed file is a structural
 * problem: UserError naming the file, what is missing and the columns we expect.
 */
export async function readCsv(file: string, required: readonly string[]): Promise<{ header: string[]; records: CsvRecord[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new UserError('file not found', { file, fix: `create it with the header: ${required.join(',')}` });
  }
  let table: string[][];
  try {
    table = parse(text, { bom: true, skip_empty_lines: true, trim: true, relax_column_count: false });
  } catch (e) {
    const line = (e as { lines?: number }).lines;
    throw new UserError(`malformed CSV (${(e as Error).message})`, { file, row: line, fix: 'fix the quoting / number of fields on that line' });
  }
  if (!table.length) throw new UserError('empty CSV: no header line', { file, fix: `the first line must be the header: ${required.join(',')}` });
  const header = table[0];
  const missing = required.filter((c) => !header.includes(c));
  if (missing.length) {
    throw new UserError(`missing column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')} (header has: ${header.join(',')})`, {
      file, fix: `the header must have the columns: ${required.join(',')}`,
    });
  }
  const records = table.slice(1).map((cells, i) => {
    const values: Record<string, string> = {};
    header.forEach((h, j) => { values[h] = cells[j]; });
    return { line: i + 2, values };
  });
  return { header, records };
}

/** An integer cell, or null when it is not one. */
export function intCell(s: string | undefined): number | null {
  if (s === undefined || !/^[+-]?\d+$/.test(s.trim())) return null;
  return Number(s);
}
