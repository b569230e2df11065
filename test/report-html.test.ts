import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { GENERATE_DEFAULTS, runGenerate } from '../pipeline/generate/index.ts';
import { runStressTest, STRESS_DEFAULTS } from '../pipeline/stress/run.ts';
import { initBackend } from '../trainer/backend.ts';
import { saveModel } from '../trainer/checkpoint.ts';
import { createModel, presetConfig } from '../trainer/model.ts';
import { evaluateStress } from '../trainer/stress-eval.ts';
import { buildReport, type ReportResult } from '../report/build.ts';
import { makeStressFixture, CLASSES, type StressFixture } from './stress-fixture.ts';

/**
 * The whole report on a 24×16 fixture: two tiny runs (untrained 'tiny' models, so the test stays fast) scored on the
 * stress corpus through `evaluateStress` (what `eval --stress` calls), then index.html: self-contained (no script,
 * nothing fetched), every chart and figure present, and, where Debian's chromium is installed, opened headless
 * without a console message and screenshotted to something that is not blank.
 */

const CHROMIUM = '/usr/bin/chromium';
const quiet = { start() {}, tick() {}, stop() {} };
let fx: StressFixture;
let report: ReportResult;
let html: string;

async function writeRun(runsRoot: string, id: string, method: string, seed: number, corpora: string[]): Promise<void> {
  const dir = join(runsRoot, id);
  await mkdir(dir, { recursive: true });
  const model = createModel(presetConfig('tiny', CLASSES.length), seed, { zeroHead: false });
  await saveModel(model, join(dir, 'best'));
  const stress = await evaluateStress(model, { corporaRoot: fx.corporaRoot, dataset: fx.dataset, adapter: 'waterbirds', size: 16, batchSize: 16, build: false });
  model.dispose();
  await writeFile(join(dir, 'config.json'), JSON.stringify({
    runId: id, dataset: fx.dataset, adapter: 'waterbirds', corporaRoot: fx.corporaRoot, seed, method: { canonical: method, corpora }, hyper: { size: 16 },
  }));
  await writeFile(join(dir, 'eval.json'), JSON.stringify({ run: id, bestEpoch: 2, size: 16, headline: { Original: stress.headline['stress original'], Flip: 0.5 }, stress }));
  await writeFile(join(dir, 'metrics.jsonl'), [1, 2, 3].map((e) => JSON.stringify({ epoch: e, train: { loss: 2 / e + seed / 10 }, val: { metric: 0.3 + e / 10, metric_name: 'acc', acc: 0.3 + e / 10 } })).join('\n'));
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm', log: () => undefined });
  const tmp = await mkdtemp(join(tmpdir(), 'report-html-'));
  fx = await makeStressFixture(tmp, { perClass: 2 });
  const base = { dataset: fx.dataset, corporaRoot: fx.corporaRoot, dataRoot: fx.root, sourceDir: fx.sourceDir, progress: quiet, log: () => {} };
  await runStressTest({ ...STRESS_DEFAULTS, ...base });
  await runGenerate({ ...GENERATE_DEFAULTS, ...base, methods: ['cf-tile'], params: {} });
  const runsRoot = join(tmp, 'runs');
  await writeRun(runsRoot, 'r-orig-0', 'orig', 0, []);
  await writeRun(runsRoot, 'r-orig-1', 'orig', 1, []);
  await writeRun(runsRoot, 'r-tile-0', 'orig+cf-tile', 2, ['cf-tile']);
  report = await buildReport({
    runDirs: ['r-orig-0', 'r-orig-1', 'r-tile-0'].map((id) => join(runsRoot, id)), name: 'toy', reportsRoot: join(tmp, 'reports'),
    saliencyImages: 3, seed: 0, backend: 'wasm', grids: true, command: 'test', log: () => {},
  });
  html = await readFile(join(report.dir, 'index.html'), 'utf8');
}, 120_000);

describe('the report page', () => {
  it('writes every file, and eval --stress scores every variant', async () => {
    expect(report.files.sort()).toEqual([
      'accuracy-toy-stress.svg', 'curves-toy-stress.svg', 'index.html', 'results.csv', 'results.md', 'saliency-toy-stress.png',
      'sample-grid-toy-stress.png', 'stress-grid-toy-stress.png', 'stress-toy-stress.svg',
    ]);
    const ev = JSON.parse(await readFile(join(report.runs[0].dir, 'eval.json'), 'utf8'));
    expect(Object.keys(ev.stress.splits.test.variants)).toEqual(['original', 'only_fg', 'no_fg', 'only_bg_b', 'only_bg_t', 'mixed_same', 'mixed_rand', 'mixed_next', 'attr_flip']);
    expect(ev.stress.splits.test.variants.original.n).toBe(6);
    expect(typeof ev.stress.headline['stress BG-gap']).toBe('number');
    expect(ev.stress.splits.test.nextClassShift.n).toBe(6);
    const png = await sharp(join(report.dir, 'saliency-toy-stress.png')).metadata();
    expect(png.width).toBe(112 * 3); // the image column + one per METHOD
  });

  it('is self-contained: inline SVG charts and PNG data URIs, no script, nothing fetched', () => {
    // booleans, so a failure does not print the whole page
    expect(/<script/i.test(html)).toBe(false);
    expect(/(src|href)=["'](?!data:)/i.test(html)).toBe(false);
    expect(/<link/i.test(html)).toBe(false);
    expect((html.match(/<svg/g) ?? []).length).toBeGreaterThanOrEqual(3);
    expect((html.match(/src="data:image\/png;base64,/g) ?? []).length).toBe(3); // saliency, training corpora, stress variants
    expect(html.includes('No paper reference: DESIGN §8 restates the paper&#39;s numbers for waterbirds and in9 only, not for toy-stress.')).toBe(true);
  });

  const hasChromium = existsSync(CHROMIUM);
  if (!hasChromium) console.log(`report-html: ${CHROMIUM} is not installed, so the headless-browser check is skipped (apt-get install -y chromium)`);

  /** Open a page headless; its console lines and the screenshot. */
  async function openHeadless(file: string, shot: string): Promise<{ status: number | null; console: string[] }> {
    const r = spawnSync(CHROMIUM, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run', `--user-data-dir=${await mkdtemp(join(tmpdir(), 'chromium-'))}`, '--enable-logging=stderr', '--v=0',
      `--screenshot=${shot}`, '--window-size=1200,1600', `file://${file}`,
    ], { encoding: 'utf8', timeout: 90_000 });
    return { status: r.status, console: `${r.stderr}`.split('\n').filter((l) => /:CONSOLE/.test(l)) };
  }

  it.skipIf(!hasChromium)('opens in headless Chromium without a console message, and the screenshot is not blank', async () => {
    const shot = join(report.dir, 'screenshot.png');
    const r = await openHeadless(join(report.dir, 'index.html'), shot);
    expect(r.status).toBe(0);
    expect(r.console).toEqual([]);
    const { data, info } = await sharp(shot).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([1200, 1600]);
    let ink = 0;
    const colours = new Set<number>();
    for (let p = 0; p < data.length; p += 3) {
      if (data[p] < 235 || data[p + 1] < 235 || data[p + 2] < 235) ink++;
      if (colours.size < 5000) colours.add((data[p] << 16) | (data[p + 1] << 8) | data[p + 2]);
    }
    expect(ink / (info.width * info.height)).toBeGreaterThan(0.03);
    expect(colours.size).toBeGreaterThan(200);
  }, 120_000);

  it.skipIf(!hasChromium)('the console check can fail: a page with a script error is caught', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bad-page-'));
    await writeFile(join(dir, 'bad.html'), '<!doctype html><p>x</p><script>notDefined()</script>');
    const r = await openHeadless(join(dir, 'bad.html'), join(dir, 'bad.png'));
    expect(r.console.join('\n')).toMatch(/Uncaught ReferenceError/);
  }, 120_000);
});
