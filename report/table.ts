import { meanStd } from '../trainer/metrics.ts';
import type { EvalReport } from '../trainer/evaluate.ts';
import { paperRowFor, paperTableFor, referenceNote } from './reference.ts';

/**
 * The results table: methods as rows, the dataset's test splits / variants as columns, mean ± sample std over
 * seeds with n, the best of each column marked, the paper's number beside ours where DESIGN §8 has one. Pure
 * functions of the runs' eval.json contents.
 */

/** A column: an eval.json figure (a fraction) shown in percent. */
export interface Column {
  key: string;
  /**
   * 'high': accuracies, AUC, AUPR. 'low': the next-class shift (paper Table 3: less probability moved to the
   * background's class is better, a drop included). 'zero': gaps between two accuracies (Original − Flip, BG-gap),
   * where a gap either way is background reliance, so the one nearest 0 is best.
   */
  better: 'high' | 'low' | 'zero';
  /** decimals shown in percent */
  decimals: number;
}

/** One method × column: the per-seed values and their mean ± sample std. */
export interface Cell {
  values: number[];
  mean: number;
  std: number;
  n: number;
  best: boolean;
  /** the paper's number for this method and column (percent), when there is one */
  paper: number | null;
}

/** One method's row. */
export interface MethodRow {
  method: string;
  seeds: number[];
  runs: string[];
  cells: Record<string, Cell>;
}

/** One dataset's table. */
export interface ResultTable {
  dataset: string;
  columns: Column[];
  rows: MethodRow[];
  note: string;
}

/** What the table needs of a run. */
export interface TableRun {
  id: string;
  dataset: string;
  method: string;
  seed: number;
  eval: Pick<EvalReport, 'headline'> & Partial<Pick<EvalReport, 'saliency' | 'stress'>>;
}

const ORDER = [
  'Original', 'Flip', 'Worst-group', 'Original − Flip', 'Mixed-Same', 'Mixed-Rand', 'Mixed-Next', 'Only-FG', 'No-FG', 'Next-class shift',
];
const STRESS_ORDER = ['original', 'only_fg', 'no_fg', 'only_bg_b', 'only_bg_t', 'mixed_same', 'mixed_rand', 'mixed_next', 'attr_flip'].map((v) => `stress ${v}`)
  .concat(['stress worst-group', 'stress BG-gap', 'stress next-class shift']);

/** How a column's best is chosen (see Column.better). */
export function betterOf(key: string): Column['better'] {
  if (/shift/i.test(key)) return 'low';
  if (/gap|Original − Flip/i.test(key)) return 'zero';
  return 'high';
}

/** The header mark of a column's direction: ↓ lower is better, →0 nearest zero is better. */
export const directionMark = (c: Column): string => (c.better === 'low' ? ' ↓' : c.better === 'zero' ? ' →0' : '');

/** The figures of one eval.json a table can show, by column key (fractions). */
export function figuresOf(e: TableRun['eval']): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(e.headline ?? {})) if (typeof v === 'number') out[k] = v;
  if (typeof out.Original === 'number' && typeof out.Flip === 'number') out['Original − Flip'] = out.Original - out.Flip;
  for (const [s, v] of Object.entries(e.saliency?.subsets ?? {})) {
    if (typeof v.inputGradient?.mean === 'number') out[`AUPR ${s}`] = v.inputGradient.mean;
  }
  for (const [k, v] of Object.entries(e.stress?.headline ?? {})) if (typeof v === 'number') out[k] = v;
  return out;
}

function columnOrder(keys: Iterable<string>): string[] {
  const rank = (k: string): [number, number, string] => {
    const i = ORDER.indexOf(k);
    if (i >= 0) return [0, i, k];
    if (k.startsWith('AUPR ')) return [2, 0, k];
    const j = STRESS_ORDER.indexOf(k);
    if (j >= 0) return [3, j, k];
    return [1, 0, k];
  };
  return [...new Set(keys)].sort((a, b) => {
    const [x, y] = [rank(a), rank(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2].localeCompare(y[2]);
  });
}

/** One table per dataset, datasets and methods in order of first appearance. Runs without eval.json are left out. */
export function buildTables(runs: readonly TableRun[]): ResultTable[] {
  const tables: ResultTable[] = [];
  for (const dataset of [...new Set(runs.map((r) => r.dataset))]) {
    const mine = runs.filter((r) => r.dataset === dataset && r.eval);
    const figures = new Map(mine.map((r) => [r, figuresOf(r.eval)]));
    const columns: Column[] = columnOrder(mine.flatMap((r) => Object.keys(figures.get(r)!))).map((key) => ({
      key, better: betterOf(key), decimals: /shift/i.test(key) ? 2 : 1,
    }));
    const rows: MethodRow[] = [...new Set(mine.map((r) => r.method))].map((method) => {
      const rs = mine.filter((r) => r.method === method).sort((a, b) => a.seed - b.seed);
      const paper = paperRowFor(dataset, method);
      const cells: Record<string, Cell> = {};
      for (const c of columns) {
        const values = rs.map((r) => figures.get(r)![c.key]).filter((v): v is number => typeof v === 'number' && !Number.isNaN(v));
        const m = meanStd(values);
        cells[c.key] = { values, mean: m.mean, std: m.std, n: m.n, best: false, paper: paper?.values[c.key] ?? null };
      }
      return { method, seeds: rs.map((r) => r.seed), runs: rs.map((r) => r.id), cells };
    });
    for (const c of columns) {
      const have = rows.filter((r) => r.cells[c.key].n > 0);
      if (have.length < 2) continue; // a single method is not "best" of anything
      const score = (r: MethodRow): number => (c.better === 'high' ? r.cells[c.key].mean : c.better === 'low' ? -r.cells[c.key].mean : -Math.abs(r.cells[c.key].mean));
      const target = Math.max(...have.map(score));
      for (const r of have) if (score(r) === target) r.cells[c.key].best = true;
    }
    tables.push({ dataset, columns, rows, note: referenceNote(dataset) });
  }
  return tables;
}

/** A cell as text: "mean ± std" in percent, "n/a" without values. */
export function formatCell(cell: Cell, c: Column): string {
  if (!cell.n) return 'n/a';
  return `${(100 * cell.mean).toFixed(c.decimals)} ± ${(100 * cell.std).toFixed(c.decimals)}`;
}

const mdEscape = (s: string): string => s.replace(/\|/g, '\\|');

/** One dataset's table as Markdown (best in bold, the paper's number in brackets), with its notes. */
export function tableMarkdown(t: ResultTable): string {
  const head = ['Method', 'n', ...t.columns.map((c) => `${c.key}${directionMark(c)}`)];
  const lines = [`| ${head.map(mdEscape).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of t.rows) {
    const n = Math.max(0, ...Object.values(r.cells).map((c) => c.n));
    const cells = t.columns.map((c) => {
      const cell = r.cells[c.key];
      const text = formatCell(cell, c);
      const shown = cell.best ? `**${text}**` : text;
      return cell.paper !== null ? `${shown} (paper ${cell.paper.toFixed(1)})` : shown;
    });
    lines.push(`| \`${mdEscape(r.method)}\` | ${n} | ${cells.join(' | ')} |`);
  }
  const ref = paperTableFor(t.dataset);
  const out = [`## ${t.dataset}`, '',
    'Test figures (%) at each run\'s best-validation checkpoint: mean ± sample std over seeds, n = seeds. **Bold**: best in its column '
    + '(↓: lower is better; →0: nearest zero is better). Columns starting with "stress" come from `cfgen eval --stress` (docs/stress-test.md); "AUPR" is the saliency AUPR by input gradient.',
    '', ...lines, '', t.note];
  if (ref) {
    const cols = Object.keys(ref.columns);
    out.push('', `Paper (DESIGN §8) for ${t.dataset}:`, '', `| Method | ${cols.map((c) => ref.columns[c]).join(' | ')} |`, `|---|${cols.map(() => '---').join('|')}|`,
      ...ref.rows.map((r) => `| ${r.label} | ${cols.map((c) => r.values[c]?.toFixed(1) ?? '').join(' | ')} |`));
  }
  return out.join('\n') + '\n';
}

const csvField = (v: string | number): string => {
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(Number(v.toFixed(4))) : '') : v;
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/**
 * Every table as one CSV: one line per dataset × method; per column `<key> mean`, `<key> std` (percent), `<key> n`,
 * `<key> best` (true/false) and `<key> paper` (percent, empty when the paper has none).
 */
export function tablesCsv(tables: readonly ResultTable[]): string {
  const keys = columnOrder(tables.flatMap((t) => t.columns.map((c) => c.key)));
  const head = ['dataset', 'method', 'seeds', 'runs', ...keys.flatMap((k) => [`${k} mean`, `${k} std`, `${k} n`, `${k} best`, `${k} paper`])];
  const lines = [head.map(csvField).join(',')];
  for (const t of tables) {
    for (const r of t.rows) {
      const fields: (string | number)[] = [t.dataset, r.method, r.seeds.join(' '), r.runs.join(' ')];
      for (const k of keys) {
        const c = r.cells[k];
        if (!c || !c.n) fields.push('', '', c ? 0 : '', c ? 'false' : '', c?.paper ?? '');
        else fields.push(100 * c.mean, 100 * c.std, c.n, String(c.best), c.paper ?? '');
      }
      lines.push(fields.map(csvField).join(','));
    }
  }
  return lines.join('\n') + '\n';
}
