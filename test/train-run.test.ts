import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { PROJECT_ROOT } from '../common/paths.ts';
import { train, type TrainOptions } from '../trainer/train.ts';
import { loadModel } from '../trainer/checkpoint.ts';
import { writeToyDataset, type Toy } from './train-fixture.ts';

let toy: Toy;
let runsRoot: string;
const quiet = { log: () => undefined, progress: 'off' as const };

function opts(over: Partial<TrainOptions>): TrainOptions {
  return {
    method: 'orig', dataset: toy.dataset, corporaRoot: toy.corporaRoot, runsRoot, model: 'tiny', size: 16, batch: 4, epochs: 2,
    backend: 'wasm', auprImages: 4, egSamples: 2, ...quiet, ...over,
  };
}

async function weightsOf(dir: string): Promise<number[][]> {
  const m = await loadModel(dir);
  const w = m.variables.map((v) => Array.from(v.dataSync()));
  m.dispose();
  return w;
}

const lines = async (f: string) => (await readFile(f, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trrun-'));
  toy = await writeToyDataset(dir, { corpora: ['cf-tile', 'f-random'], side: 20, counts: { train: 8, val: 4, test: 8 } });
  runsRoot = join(dir, 'runs');
});

describe('train + evaluate (API)', () => {
  it('writes the run folder: config, per-epoch metrics, best/last checkpoints, state and eval', async () => {
    const r = await train(opts({ method: 'cf-tile+f-random+sal@0.5', runId: 'full' }));
    const dir = join(runsRoot, 'full');
    const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({ runId: 'full', dataset: 'toy', adapter: 'waterbirds', seed: 0, cfLoss: 'logp', hyper: { model: 'tiny', size: 16, batch: 4, epochs: 2, clipNorm: 1 } });
    expect(cfg.method.canonical).toBe('orig+cf-tile+f-random+sal@0.5');
    expect(cfg.corpora['cf-tile'].originalsCovered).toBe(8);
    const m = await lines(join(dir, 'metrics.jsonl'));
    expect(m.map((l) => l.epoch)).toEqual([1, 2]);
    for (const l of m) {
      // 8 originals + 8 CF + 8 F per epoch; sal on the 8 originals
      expect(l.train).toMatchObject({ images: 24, originals: 8, cf_images: 8, f_images: 8, steps: 2 });
      for (const k of ['loss', 'ce', 'cf', 'f', 'sal']) expect(Number.isFinite(l.train[k])).toBe(true);
      expect(l.val.n).toBe(4);
      expect(l.val.metric_name).toBe('acc');
      expect(l.lr).toBeGreaterThan(0);
      expect(l.images_per_s).toBeGreaterThan(0);
    }
    expect(r.state).toMatchObject({ epoch: 2, step: 4, finished: true, stopReason: 'epochs' });
    for (const f of ['best', 'last']) expect((await stat(join(dir, f))).isDirectory()).toBe(true);
    const ev = JSON.parse(await readFile(join(dir, 'eval.json'), 'utf8'));
    expect(Object.keys(ev.headline).sort()).toEqual(['Flip', 'Original', 'Worst-group']);
    expect(ev.splits.test.n).toBe(8);
    expect(ev.splits.test.waterbirds.n).toEqual({ original: 4, flip: 4 });
    expect(ev.bestEpoch).toBe(r.state.bestEpoch);
    expect(Object.keys(ev.saliency.subsets).sort()).toEqual(['test/flip', 'test/original']);
    expect(ev.saliency.subsets['test/flip'].inputGradient.n).toBe(4);
    expect(ev.saliency.subsets['test/flip'].expectedGradients.mean).toBeGreaterThan(0);
  });

  it('rerunning the same command resumes: 1 epoch + 1 more equals 2 epochs straight', async () => {
    await train(opts({ runId: 'straight', evaluate: false }));
    await train(opts({ runId: 'split', epochs: 1, evaluate: false }));
    const again = await train(opts({ runId: 'split', evaluate: false }));
    expect(again.state).toMatchObject({ epoch: 2, step: 4 });
    expect(await weightsOf(join(runsRoot, 'split', 'last'))).toEqual(await weightsOf(join(runsRoot, 'straight', 'last')));
    const a = await lines(join(runsRoot, 'straight', 'metrics.jsonl'));
    const b = await lines(join(runsRoot, 'split', 'metrics.jsonl'));
    expect(b.map((l) => [l.epoch, l.train.loss, l.val.acc])).toEqual(a.map((l) => [l.epoch, l.train.loss, l.val.acc]));
    // a finished run is not trained again
    const done = await train(opts({ runId: 'split', evaluate: false }));
    expect(done.state.step).toBe(4);
  });

  it('--workers 2 runs data-parallel steps with the same losses (up to rounding)', async () => {
    await train(opts({ runId: 'par', epochs: 1, workers: 2, evaluate: false }));
    const [p] = await lines(join(runsRoot, 'par', 'metrics.jsonl'));
    const [a] = await lines(join(runsRoot, 'straight', 'metrics.jsonl'));
    expect(p.workers).toBe(2);
    expect(a.workers).toBe(1);
    expect(p.train.loss).toBeCloseTo(a.train.loss, 4);
    expect(p.val.loss).toBeCloseTo(a.val.loss, 3);
  });

  it('refuses to resume a run with other settings, and names them', async () => {
    await expect(train(opts({ runId: 'straight', lr: 0.5, evaluate: false }))).rejects.toThrow(/other settings \(lr: 0\.0008 → 0\.5\)[\s\S]*--fresh/);
  });

  it('stops after --max-steps and still validates, saves and evaluates', async () => {
    const r = await train(opts({ runId: 'capped', maxSteps: 1, auprImages: 0 }));
    expect(r.state).toMatchObject({ epoch: 1, step: 1, finished: true, stopReason: 'max-steps 1' });
    expect(r.eval?.saliency).toBeNull();
    expect(existsSync(join(runsRoot, 'capped', 'best'))).toBe(true);
    // lifting the cap continues with the next epoch
    const more = await train(opts({ runId: 'capped', auprImages: 0, evaluate: false }));
    expect(more.state).toMatchObject({ epoch: 2, step: 3, stopReason: 'epochs' });
  });

  it('runs the generator for a missing corpus, saying so first, then trains with it', async () => {
    const log: string[] = [];
    const r = await train(opts({ method: 'cf-grey', runId: 'autogen', epochs: 1, evaluate: false, log: (l) => log.push(l) }));
    expect(log.find((l) => l.startsWith('corpora missing'))).toMatch(/^corpora missing \(cf-grey\): generating them first with npx tsx cfgen\.ts generate .*this can take minutes/);
    // the lines logged before the run folder existed are in its train.log too
    expect(await readFile(join(runsRoot, 'autogen', 'train.log'), 'utf8')).toMatch(/corpora missing \(cf-grey\)[\s\S]*corpora cf-grey generated[\s\S]*backend /);
    expect(r.config.corpora['cf-grey'].originalsCovered).toBe(8);
    expect(r.config.corpora['cf-grey'].corpusId).toMatch(/^[0-9a-f]{16,}$/);
    const m = await lines(join(runsRoot, 'autogen', 'metrics.jsonl'));
    expect(m[0].train.cf_images).toBe(8);
  });

  it('says which command makes a missing corpus', async () => {
    await expect(train(opts({ method: 'cf-random', runId: 'norandom', generate: false }))).rejects.toThrow(/make generate DATASET=toy METHODS=cf-random/);
  });
});

describe('make train (CLI end to end)', () => {
  it('`make train METHOD=orig` trains, evaluates and prints the table', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trmake-'));
    const small = await writeToyDataset(dir, { dataset: 'synth-toy', side: 20, counts: { train: 4, val: 2, test: 4 } });
    const r = spawnSync('make', ['-s', 'train', 'METHOD=orig', 'DATASET=synth-toy', 'EPOCHS=1', 'RUN=smoke', 'BACKEND=wasm'], {
      cwd: PROJECT_ROOT, encoding: 'utf8', env: { ...process.env, CFGEN_CORPORA_ROOT: small.corporaRoot, CFGEN_RUNS_ROOT: join(dir, 'runs') },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/NOT THE PAPER'S TABLE 8/);
    expect(r.stderr).toMatch(/Original\s+\d+\.\d/);
    const ev = JSON.parse(await readFile(join(dir, 'runs', 'smoke', 'eval.json'), 'utf8'));
    expect(ev.splits.test.n).toBe(4);
  });
});
