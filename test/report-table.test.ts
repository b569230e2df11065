import { describe, it, expect, beforeAll } from 'vitest';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildReport, type ReportResult } from '../report/build.ts';
import { listRunDirs, parseMetricsLines } from '../report/collect.ts';
import { methodTerms, paperRowFor } from '../report/reference.ts';
import { buildTables, figuresOf } from '../report/table.ts';

/**
 * A report built from runs whose eval.json values are known holds exactly their means and sample stds (results.md
 * at one decimal, results.csv at full precision), marks the best of each column, puts the paper's number beside a
 * matching METHOD on a paper dataset, and says there is none for synth-* datasets.
 */

let runsRoot: string;
let report: ReportResult;

async function writeRun(id: string, dataset: string, method: string, seed: number, evalJson: object | null): Promise<void> {
  const dir = join(runsRoot, id);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify({
    runId: id, dataset, adapter: 'waterbirds', corporaRoot: join(runsRoot, 'no-corpora'), seed,
    method: { canonical: method, corpora: [] }, hyper: { size: 16 },
  }));
  await writeFile(join(dir, 'metrics.jsonl'), [1, 2].map((e) => JSON.stringify({ epoch: e, train: { loss: 1 / e }, val: { metric: 0.5 + e / 10, metric_name: 'acc', acc: 0.5 + e / 10 } })).join('\n') + '\n');
  if (evalJson) await writeFile(join(dir, 'eval.json'), JSON.stringify(evalJson));
}

const ev = (Original: number, Flip: number, extra: Record<string, unknown> = {}) => ({ bestEpoch: 2, size: 16, headline: { Original, Flip, 'Worst-group': Flip - 0.1 }, ...extra });

beforeAll(async () => {
  runsRoot = await mkdtemp(join(tmpdir(), 'report-runs-'));
  // orig: Original 90, 80, 70 → 80.0 ± 10.0; Flip 50, 60, 70 → 60.0 ± 10.0
  await writeRun('a0', 'synth-waterbirds', 'orig', 0, ev(0.9, 0.5, { stress: { headline: { 'stress original': 0.9, 'stress mixed_rand': 0.4, 'stress BG-gap': 0.3 } } }));
  await writeRun('a1', 'synth-waterbirds', 'orig', 1, ev(0.8, 0.6, { stress: { headline: { 'stress original': 0.7, 'stress mixed_rand': 0.6, 'stress BG-gap': 0.1 } } }));
  await writeRun('a2', 'synth-waterbirds', 'orig', 2, ev(0.7, 0.7));
  // f-random: Original 95, 85 → 90.0 ± 7.07; Flip 75, 65 → 70.0 ± 7.07
  await writeRun('b0', 'synth-waterbirds', 'orig+f-random', 0, ev(0.95, 0.75, { saliency: { subsets: { 'test/flip': { inputGradient: { mean: 0.25, n: 10, skipped: 0 } } } } }));
  await writeRun('b1', 'synth-waterbirds', 'orig+f-random', 1, ev(0.85, 0.65, { saliency: { subsets: { 'test/flip': { inputGradient: { mean: 0.35, n: 10, skipped: 0 } } } } }));
  await writeRun('c0', 'synth-waterbirds', 'orig+cf-tile', 0, null); // never evaluated
  await writeRun('w0', 'waterbirds', 'orig+cf-cagan+f-random+sal@10', 0, ev(0.9, 0.8));
  await writeRun('w1', 'waterbirds', 'orig', 0, ev(0.97, 0.7));
  await mkdir(join(runsRoot, 'experiment-logs')); // no config.json: not a run
  const reportsRoot = await mkdtemp(join(tmpdir(), 'reports-'));
  report = await buildReport({
    runDirs: await listRunDirs(runsRoot), name: 'known', reportsRoot, saliencyImages: 0, seed: 0, backend: 'cpu', grids: false,
    command: 'test', log: () => {},
  });
});

describe('report tables from known eval.json values', () => {
  it('finds every run folder (and nothing else) under the runs root', async () => {
    expect((await listRunDirs(runsRoot)).map((d) => d.split('/').pop())).toEqual(['a0', 'a1', 'a2', 'b0', 'b1', 'c0', 'w0', 'w1']);
  });

  it('results.md holds exactly the means and sample stds, n, and the best of each column in bold', async () => {
    const md = await readFile(join(report.dir, 'results.md'), 'utf8');
    const row = (method: string) => md.split('\n').find((l) => l.startsWith(`| \`${method}\` |`))!;
    const head = md.split('\n').find((l) => l.startsWith('| Method |'))!.split('|').map((c) => c.trim());
    const cell = (method: string, col: string) => row(method).split('|').map((c) => c.trim())[head.indexOf(col)];
    expect(cell('orig', 'n')).toBe('3');
    expect(cell('orig', 'Original')).toBe('80.0 ± 10.0');
    expect(cell('orig', 'Flip')).toBe('60.0 ± 10.0');
    expect(cell('orig+f-random', 'n')).toBe('2');
    expect(cell('orig+f-random', 'Original')).toBe('**90.0 ± 7.1**');
    expect(cell('orig+f-random', 'Flip')).toBe('**70.0 ± 7.1**');
    // Original − Flip: orig 40, 20, 0 → 20.0 ± 20.0; f-random 20, 20 → 20.0 ± 0.0 (nearest zero is best)
    expect(cell('orig', 'Original − Flip →0')).toMatch(/20\.0 ± 20\.0/);
    // a column only some seeds have: the mean of those, with n of those (stress: 2 of 3 seeds)
    expect(cell('orig', 'stress original')).toBe('80.0 ± 14.1');
    expect(cell('orig', 'stress BG-gap →0')).toBe('20.0 ± 14.1');
    expect(cell('orig+f-random', 'AUPR test/flip')).toBe('30.0 ± 7.1');
    expect(md).toMatch(/Not evaluated \(no eval.json\), left out of the tables: c0/);
    expect(md).not.toMatch(/orig\+cf-tile/);
  });

  it('results.csv holds the same figures at full precision, with n and the best flags', async () => {
    const csv = (await readFile(join(report.dir, 'results.csv'), 'utf8')).trim().split('\n').map((l) => l.split(','));
    const [head, ...rows] = csv;
    const get = (dataset: string, method: string, col: string) => rows.find((r) => r[0] === dataset && r[1] === method)![head.indexOf(col)];
    expect(Number(get('synth-waterbirds', 'orig', 'Original mean'))).toBeCloseTo(80, 9);
    expect(Number(get('synth-waterbirds', 'orig', 'Original std'))).toBeCloseTo(10, 9);
    expect(get('synth-waterbirds', 'orig', 'Original n')).toBe('3');
    expect(get('synth-waterbirds', 'orig', 'Original best')).toBe('false');
    expect(Number(get('synth-waterbirds', 'orig+f-random', 'Flip std'))).toBeCloseTo(100 * Math.sqrt(0.005), 3);
    expect(get('synth-waterbirds', 'orig+f-random', 'Flip best')).toBe('true');
    expect(get('synth-waterbirds', 'orig', 'seeds')).toBe('0 1 2');
    expect(get('waterbirds', 'orig+cf-cagan+f-random+sal@10', 'Flip paper')).toBe('90.6');
    expect(get('synth-waterbirds', 'orig', 'Flip paper')).toBe('');
  });

  it('the paper\'s numbers beside ours on Waterbirds; none for synth-* datasets, and it says so', async () => {
    const md = report.markdown;
    const wb = md.slice(md.indexOf('## waterbirds'));
    expect(wb).toMatch(/\| `orig\+cf-cagan\+f-random\+sal@10` \| 1 \| 90\.0 ± 0\.0 \(paper 94\.8\) \| \*\*80\.0 ± 0\.0\*\* \(paper 90\.6\)/);
    expect(wb).toMatch(/\| `orig` \| 1 \| \*\*97\.0 ± 0\.0\*\* \(paper 98\.4\) \| 70\.0 ± 0\.0 \(paper 76\.1\)/);
    expect(wb).toMatch(/Paper \(DESIGN §8\) for waterbirds/);
    const synth = md.slice(md.indexOf('## synth-waterbirds'), md.indexOf('## waterbirds'));
    expect(synth).toMatch(/No paper reference: synth-waterbirds is this toolkit's offline synthetic dataset/);
    expect(synth).not.toMatch(/\(paper/);
  });

  it('METHOD terms match the paper rows whatever the values and order', () => {
    expect(methodTerms('orig+sal@10+cf-cagan+f-random')).toBe('cf-cagan+f-random+sal');
    expect(paperRowFor('in9', 'orig+f-shuffle')!.values['Mixed-Rand']).toBe(57.1);
    expect(paperRowFor('in9', 'orig+f-random')).toBeNull();
    expect(paperRowFor('synth-in9', 'orig')).toBeNull();
  });

  it('best: highest accuracy, lowest shift, the gap nearest zero; ties all marked', () => {
    const t = buildTables([
      { id: 'x', dataset: 'd', method: 'm1', seed: 0, eval: { headline: { acc: 0.5, 'Next-class shift': 0.02 }, stress: { headline: { 'stress BG-gap': -0.05 } } as never } },
      { id: 'y', dataset: 'd', method: 'm2', seed: 0, eval: { headline: { acc: 0.5, 'Next-class shift': -0.01 }, stress: { headline: { 'stress BG-gap': 0.1 } } as never } },
    ])[0];
    expect(t.rows.map((r) => r.cells.acc.best)).toEqual([true, true]);
    expect(t.rows.map((r) => r.cells['Next-class shift'].best)).toEqual([false, true]);
    expect(t.rows.map((r) => r.cells['stress BG-gap'].best)).toEqual([true, false]);
  });

  it('pure pieces: figures of an eval.json and metrics.jsonl with a resumed epoch', () => {
    expect(figuresOf({ headline: { Original: 0.9, Flip: 0.6 } })['Original − Flip']).toBeCloseTo(0.3, 12);
    const pts = parseMetricsLines('{"epoch":1,"train":{"loss":2},"val":{"metric":0.5,"metric_name":"acc","acc":0.5}}\n{"epoch":1,"train":{"loss":1},"val":{"metric":0.6,"metric_name":"acc","acc":0.6}}\n{"epo');
    expect(pts).toEqual([{ epoch: 1, trainLoss: 1, valMetric: 0.6, valMetricName: 'acc', valAcc: 0.6 }]);
  });
});
