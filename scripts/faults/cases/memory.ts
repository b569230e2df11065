/**
 * Peak memory against dataset size. A `folder:` dataset of N 16×16 PNG training images (two classes, a box per
 * image in boxes.csv, plus 100 val and 100 test images), for N = 2k, 20k and 100k; for each, the peak RSS (VmHWM,
 * read by a preloaded hook as each node process exits) of `dataset`, `generate --methods cf-tile` and one epoch of
 * `train --method cf-tile` (tiny model, 16 px, no evaluation). A command fails the case when it needs more than
 * twice at 100k what it needs at 2k. The 100k point takes minutes, so it runs when CFGEN_FAULTS_FULL=1 (and in
 * `make test-faults`); without it the 20k point is held to the same bound.
 */
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Checks, cfgen, mb, rng, rootsIn, secs, tail, type RunResult } from '../lib.ts';
import { tinyImage } from '../png.ts';
import type { Case, Ctx, Outcome } from '../suite.ts';

const SIDE = 16;
const SIZES = { '2k': 2_000, '20k': 20_000, '100k': 100_000 } as const;
type Size = keyof typeof SIZES;
const COMMANDS = ['dataset', 'generate', 'train'] as const;
type Command = (typeof COMMANDS)[number];

/** Writes the folder dataset (images and boxes.csv), returns its root. */
async function writeDataset(dir: string, train: number): Promise<string> {
  const root = join(dir, 'ds');
  const r = rng('memory-dataset', train);
  await mkdir(root, { recursive: true });
  const boxes = await open(join(root, 'boxes.csv'), 'w');
  await boxes.write('path,x,y,w,h\n');
  for (const [split, n] of [['train', train], ['val', 100], ['test', 100]] as const) {
    for (const cls of ['a', 'b']) await mkdir(join(root, split, cls), { recursive: true });
    let lines = '';
    for (let i = 0; i < n; i++) {
      const label = i % 2;
      const rel = `${split}/${label ? 'b' : 'a'}/img-${i}.png`;
      const { png, box } = tinyImage(SIDE, label, r);
      await writeFile(join(root, rel), png);
      lines += `${rel},${box.join(',')}\n`;
      if (lines.length > 1 << 16) { await boxes.write(lines); lines = ''; }
    }
    await boxes.write(lines);
  }
  await boxes.close();
  return root;
}

interface Point { kb: Partial<Record<Command, number>>; ms: Partial<Record<Command, number>>; failures: string[]; writeMs: number }
const points = new Map<Size, Promise<Point>>();

/** Builds the dataset of one size and runs the three commands on it, measured (once per suite run). */
function measure(ctx: Ctx, size: Size): Promise<Point> {
  if (!points.has(size)) {
    points.set(size, (async () => {
      const dir = join(ctx.tmp, `mem-${size}`);
      const roots = rootsIn(dir);
      const t0 = Date.now();
      const root = await writeDataset(dir, SIZES[size]);
      const p: Point = { kb: {}, ms: {}, failures: [], writeMs: Date.now() - t0 };
      const ds = `folder:${root}`;
      const argv: Record<Command, string[]> = {
        dataset: ['dataset', ds],
        generate: ['generate', '--dataset', ds, '--methods', 'cf-tile', '--quiet'],
        // by its corpora folder (folder-<name>, which `--dataset folder:<path>` resolves to as well), originals only:
        // this point measures the rows and the epoch, not the corpus reader
        train: ['train', '--dataset', 'folder-ds', '--method', 'orig', '--model', 'tiny', '--size', String(SIDE), '--epochs', '1', '--no-eval'],
      };
      for (const c of COMMANDS) {
        const r: RunResult = await cfgen(argv[c], { roots, measure: true, timeoutMs: 15 * 60_000 });
        p.ms[c] = r.ms;
        if (r.code !== 0) { p.failures.push(`${c} at ${size}: exit ${r.code ?? r.signal}`, ...tail(r)); break; }
        if (r.peakKb === undefined) { p.failures.push(`${c} at ${size}: no VmHWM was recorded`); break; }
        p.kb[c] = r.peakKb;
      }
      await rm(dir, { recursive: true, force: true });
      return p;
    })());
  }
  return points.get(size)!;
}

async function memoryCase(ctx: Ctx, command: Command): Promise<Outcome> {
  const c = new Checks();
  const sizes: Size[] = ctx.full ? ['2k', '20k', '100k'] : ['2k', '20k'];
  const got: Partial<Record<Size, Point>> = {};
  for (const s of sizes) got[s] = await measure(ctx, s);
  for (const s of sizes) for (const f of got[s]!.failures) if (!c.failures.includes(f)) c.failures.push(f);
  const base = got['2k']!.kb[command];
  const top = sizes[sizes.length - 1];
  const last = got[top]!.kb[command];
  if (base !== undefined && last !== undefined) c.ok(last <= 2 * base, `${command}: ${mb(last)} at ${top} is more than twice the ${mb(base)} at 2k`);
  const figures = sizes.map((s) => `${s} ${mb(got[s]!.kb[command])} in ${secs(got[s]!.ms[command] ?? 0)}`).join(', ');
  const ratio = base && last ? ` (${(last / base).toFixed(2)}× the 2k figure)` : '';
  const skipped = ctx.full ? '' : '; 100k not run (CFGEN_FAULTS_FULL=1 runs it)';
  return {
    status: c.failures.length ? 'FAILED' : 'held',
    injected: `${command} on ${sizes.join('/')} tiny PNGs: ${figures}${ratio}${skipped}`,
    detail: c.failures,
    figures: { [command]: `${figures}${ratio}` },
  };
}

// the first case pays for every measurement (2k + 20k ≈ 60 s; the 100k point adds about 5 min)
export const memoryCases: Case[] = COMMANDS.map((command, i): Case => ({ id: `rss/${command}`, cost: i ? 0 : 100, run: (ctx) => memoryCase(ctx, command) }));
