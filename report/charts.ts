import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { RunRecord } from './collect.ts';
import type { ResultTable } from './table.ts';

/**
 * The report's charts: Vega-Lite specs rendered to SVG on the server (vega's headless View, renderer 'none'), so
 * index.html needs no script and opens offline. The specs are built from plain data and exported for tests.
 */

/** Render a Vega-Lite spec to an SVG string. */
export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** One bar-chart datum: a run's value (percent) of a column. */
export interface BarDatum {
  method: string;
  column: string;
  seed: number;
  value: number;
}

/** Per-seed values of the given columns of a table, in percent. */
export function barData(t: ResultTable, columns: readonly string[]): BarDatum[] {
  const out: BarDatum[] = [];
  for (const r of t.rows) {
    for (const c of columns) {
      const cell = r.cells[c];
      if (!cell) continue;
      // values are in seed order for the seeds that have this figure
      cell.values.forEach((v, i) => out.push({ method: r.method, column: c.replace(/^stress /, ''), seed: r.seeds[i] ?? i, value: 100 * v }));
    }
  }
  return out;
}

/**
 * Grouped bars: one group per column (split or variant), one bar per method at its mean over seeds, an error bar of
 * ± one sample std and a dot per seed, so the seed spread is visible, not only summarised.
 */
export function accuracyBarSpec(data: BarDatum[], title: string, columnOrder: readonly string[]): vl.TopLevelSpec {
  const x = { field: 'column', type: 'nominal', sort: columnOrder.map((c) => c.replace(/^stress /, '')), title: null, axis: { labelAngle: -30 } } as const;
  const color = { field: 'method', type: 'nominal', title: 'METHOD', legend: { orient: 'bottom', columns: 1, labelLimit: 400 } } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    // a group per column, wide enough to read with one METHOD and not overflowing with many
    title, width: { step: Math.max(10, Math.round(48 / Math.max(1, new Set(data.map((d) => d.method)).size))) }, height: 220,
    data: { values: data as unknown as Record<string, unknown>[] },
    encoding: { x, xOffset: { field: 'method', type: 'nominal' }, color },
    layer: [
      { mark: { type: 'bar', opacity: 0.85 }, encoding: { y: { aggregate: 'mean', field: 'value', type: 'quantitative', title: 'test accuracy, % (mean over seeds)', scale: { domain: [0, 100] } } } },
      // extent stdev: Vega's sample standard deviation, the same n − 1 std as the table
      { mark: { type: 'errorbar', extent: 'stdev', ticks: true, color: 'black' }, encoding: { y: { field: 'value', type: 'quantitative', title: null } } },
      { mark: { type: 'point', filled: true, size: 14, color: 'black', opacity: 0.6 }, encoding: { y: { field: 'value', type: 'quantitative' } } },
    ],
  } as vl.TopLevelSpec;
}

/** One point of a training curve. */
export interface CurveDatum {
  run: string;
  method: string;
  epoch: number;
  series: string;
  value: number;
}

/** Train loss and the validation metric per epoch of every run (metrics.jsonl). */
export function curveData(runs: readonly RunRecord[]): CurveDatum[] {
  const out: CurveDatum[] = [];
  for (const r of runs) {
    for (const e of r.epochs) {
      if (e.trainLoss !== null) out.push({ run: r.id, method: r.method, epoch: e.epoch, series: 'train loss (per image)', value: e.trainLoss });
      if (e.valMetric !== null) out.push({ run: r.id, method: r.method, epoch: e.epoch, series: `validation ${e.valMetricName}`, value: e.valMetric });
    }
  }
  return out;
}

/** Training curves: one panel per series, a line per run coloured by METHOD. */
export function curveSpec(data: CurveDatum[], title: string): vl.TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values: data as unknown as Record<string, unknown>[] },
    facet: { column: { field: 'series', type: 'nominal', title: null } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 300, height: 180,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1, format: 'd' } },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false }, axis: { format: '.3~f' } },
        color: { field: 'method', type: 'nominal', title: 'METHOD', legend: { orient: 'bottom', columns: 1, labelLimit: 400 } },
        detail: { field: 'run', type: 'nominal' },
      },
    },
  } as vl.TopLevelSpec;
}
