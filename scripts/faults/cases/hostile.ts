/**
 * Input a stranger hands you, through the command line:
 * - a `folder:` dataset with symbolic links out of its root (a linked file, a linked folder, a relative `../` link):
 *   error rows naming the link, and nothing from outside in any corpus;
 * - a 16000×16000 PNG (a solid colour: a few hundred kB on disk, 768 MB of pixels): refused from its header by
 *   `dataset` (error row) and, when the source manifest admits it, by `generate` (error row), each in bounded memory;
 * - file and class names with a newline, a tab, quotes, `$(…)`, unicode and emoji: ingested, generated and verified;
 * - `make` variables that try to run a command (`DATASET='x;touch F'`, `$(touch F)`, backquotes, broken quotes):
 *   no file F appears.
 */
import sharp from 'sharp';
import { mkdir, realpath, symlink, writeFile } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { openCorpus, readSourceManifest, type CorpusRow } from '../../../manifests/index.ts';
import { Checks, cfgen, exists, mb, rng, rootsIn, run, secs, tail, type RunResult } from '../lib.ts';
import { boxMask, tinyImage } from '../png.ts';
import type { Case, Ctx, Outcome } from '../suite.ts';

const SIDE = 16;

/** Writes images (with a mask each) at `<root>/<split>/<class>/<name>`; returns their ids. */
async function writeImages(root: string, files: { split: string; cls: string; name: string }[]): Promise<string[]> {
  const r = rng('hostile', root);
  const ids: string[] = [];
  for (const [i, f] of files.entries()) {
    const { png, box } = tinyImage(SIDE, i % 2, r);
    await mkdir(join(root, f.split, f.cls), { recursive: true });
    await mkdir(join(root, 'masks', f.split, f.cls), { recursive: true });
    await writeFile(join(root, f.split, f.cls, f.name), png);
    await writeFile(join(root, 'masks', f.split, f.cls, f.name.replace(/\.[^.]*$/, '.png')), boxMask(SIDE, box));
    ids.push(`${f.split}/${f.cls}/${f.name}`);
  }
  return ids;
}

const plain = (n: number) => Array.from({ length: n }, (_, i) => ({ split: i < n - 2 ? 'train' : 'test', cls: i % 2 ? 'dog' : 'cat', name: `img-${i}.png` }));

/** The source manifest folder a `dataset` run reports. */
function sourceDirOf(r: RunResult): string | null {
  return /source manifest (\/\S+)/.exec(r.out)?.[1] ?? null;
}

/** The corpus folder `generate` reports for a method (the last field of its summary line). */
function corpusDirOf(r: RunResult, method: string): string | null {
  return new RegExp(`^${method}\\s.*\\s(/\\S+)$`, 'm').exec(r.out)?.[1] ?? null;
}

async function corpusRows(dir: string): Promise<CorpusRow[]> {
  const rows: CorpusRow[] = [];
  for await (const row of (await openCorpus<CorpusRow>(dir)).rows()) rows.push(row);
  return rows;
}

async function symlinks(ctx: Ctx): Promise<Outcome> {
  const c = new Checks();
  const base = join(ctx.tmp, 'hostile-links');
  const root = join(base, 'ds');
  const outside = join(base, 'outside');
  await writeImages(root, plain(8));
  await writeImages(outside, [{ split: 'secrets', cls: 'x', name: 'secret.png' }, { split: 'secrets', cls: 'x', name: 'other.png' }]);
  const links: [string, string][] = [
    ['train/dog/linked.png', join(outside, 'secrets', 'x', 'secret.png')],
    ['train/evil', join(outside, 'secrets', 'x')],
    ['train/cat/relative.png', '../../../outside/secrets/x/other.png'],
  ];
  for (const [at, to] of links) await symlink(to, join(root, at));
  const roots = rootsIn(base);
  const ds = await cfgen(['dataset', `folder:${root}`], { roots });
  c.exit(ds, 0, 'dataset');
  c.ok(/symbolic link/.test(ds.out), 'dataset does not report the links', tail(ds));
  const src = sourceDirOf(ds);
  if (c.ok(src, 'dataset did not say where it wrote the source manifest', tail(ds))) {
    const { rows } = await readSourceManifest(src!);
    const realRoot = await realpath(root);
    const escaped = new Set(['train/dog/linked.png', 'train/evil/secret.png', 'train/evil/other.png', 'train/cat/relative.png']);
    for (const row of rows.filter((x) => escaped.has(x.id))) {
      c.ok(row.status === 'error' && /symbolic link.*outside the dataset root/.test(row.error ?? ''), `${row.id}: ${row.status}, not an error row naming the link`);
    }
    for (const row of rows.filter((x) => x.status === 'ok')) {
      const real = await realpath(join(root, row.path));
      c.ok(real.startsWith(realRoot + sep), `${row.id} is ok but reads ${real}, outside the root`);
    }
    c.ok(!rows.some((x) => x.class_name === 'evil' && x.status === 'ok'), 'the linked folder became a class');
    const gen = await cfgen(['generate', '--dataset', `folder:${root}`, '--methods', 'cf-grey', '--quiet'], { roots });
    c.exit(gen, 0, 'generate');
    const dir = corpusDirOf(gen, 'cf-grey');
    if (c.ok(dir, 'generate did not say where the cf-grey corpus is', tail(gen))) {
      const made = (await corpusRows(dir!)).filter((x) => x.status === 'ok').map((x) => x.source_id);
      c.ok(!made.some((id) => escaped.has(id)), `a corpus image was made from a file outside the root: ${made.filter((id) => escaped.has(id)).join(', ')}`);
      c.ok(made.length === 6, `${made.length} corpus images, expected the 6 train images inside the root`);
    }
  }
  return { status: c.failures.length ? 'FAILED' : 'held', injected: 'folder: dataset with a linked file, a linked folder and a ../ link out of its root', detail: c.failures };
}

const HUGE = 16000;
/** Peak RSS allowed while refusing it: the pixels alone would take 768 MB. */
const HUGE_BOUND_KB = 512 * 1024;

async function hugePng(ctx: Ctx): Promise<Outcome> {
  const c = new Checks();
  const base = join(ctx.tmp, 'hostile-huge');
  const root = join(base, 'ds');
  await writeImages(root, plain(6));
  const t0 = Date.now();
  const file = join(root, 'train', 'cat', 'huge.png');
  await sharp({ create: { width: HUGE, height: HUGE, channels: 3, background: '#3070a0' } }).png({ compressionLevel: 9 }).toFile(file);
  const made = Date.now() - t0;
  // an object box, so generate has something to do with it (without one the row is skipped before any check)
  await writeFile(join(root, 'boxes.csv'), 'path,x,y,w,h\ntrain/cat/huge.png,4000,4000,2000,2000\n');
  const roots = rootsIn(base);
  const refused = /image is 16000x16000 \(256\.0 megapixels\), over the limit of 40\.0 megapixels; pass --max-pixels 256000000/;
  const peaks: string[] = [];
  const measured = (what: string, r: RunResult) => {
    peaks.push(`${what} ${mb(r.peakKb)}`);
    c.ok(r.peakKb !== undefined && r.peakKb < HUGE_BOUND_KB, `${what}: peak RSS ${mb(r.peakKb)}, over the ${mb(HUGE_BOUND_KB)} bound`);
  };
  // dataset: the row is an error, from the header
  const ds = await cfgen(['dataset', `folder:${root}`], { roots, measure: true });
  c.exit(ds, 0, 'dataset');
  measured('dataset', ds);
  const src = sourceDirOf(ds);
  if (c.ok(src, 'dataset did not say where it wrote the source manifest', tail(ds))) {
    const row = (await readSourceManifest(src!)).rows.find((x) => x.id === 'train/cat/huge.png');
    c.ok(row?.status === 'error' && refused.test(row.error ?? ''), `dataset: the huge image's row is ${row?.status ?? 'missing'} (${row?.error ?? ''})`);
  }
  // a manifest that admits it (a higher limit at ingest): generate refuses it with the default limit
  const admit = await cfgen(['dataset', `folder:${root}`, '--max-pixels', '300000000'], { roots, measure: true });
  c.exit(admit, 0, 'dataset --max-pixels 300000000');
  measured('dataset --max-pixels 3e8', admit);
  const src2 = sourceDirOf(admit);
  if (c.ok(src2, 'dataset did not say where it wrote the source manifest', tail(admit))) {
    const gen = await cfgen(['generate', '--source', src2!, '--methods', 'cf-grey', '--max-error-rate', '1', '--quiet'], { roots, measure: true });
    c.exit(gen, 0, 'generate --source (default limit)');
    measured('generate', gen);
    const dir = corpusDirOf(gen, 'cf-grey');
    if (c.ok(dir, 'generate did not say where the cf-grey corpus is', tail(gen))) {
      const row = (await corpusRows(dir!)).find((x) => x.source_id === 'train/cat/huge.png');
      c.ok(row?.status === 'error' && /16000x16000 .*over the limit of 40\.0 megapixels/.test(row.error ?? ''), `generate: the huge image's row is ${row?.status ?? 'missing'} (${row?.error ?? ''})`);
    }
  }
  return {
    status: c.failures.length ? 'FAILED' : 'held',
    injected: `a ${HUGE}×${HUGE} PNG in a folder: dataset (written in ${secs(made)}); peak RSS ${peaks.join(', ')}`,
    detail: c.failures,
    figures: { 'refusing a 16000×16000 PNG': peaks.join(', ') },
  };
}

async function oddNames(ctx: Ctx): Promise<Outcome> {
  const c = new Checks();
  const base = join(ctx.tmp, 'hostile-names');
  const root = join(base, 'ds');
  const names = ['new\nline.png', 'tab\there.png', 'quote\'s "and" $(touch x).png', '日本語 ü.png', '🐦 bird.png', ' lead space.png', '-dash.png', 'semi;colon&amp.png'];
  const files = [
    ...names.map((name, i) => ({ split: 'train', cls: i % 2 ? 'ñandú' : 'cat', name })),
    { split: 'test', cls: 'cat', name: 'a\nb.png' }, { split: 'test', cls: 'ñandú', name: 'ü.png' },
  ];
  const ids = await writeImages(root, files);
  const roots = rootsIn(base);
  const ds = await cfgen(['dataset', `folder:${root}`], { roots });
  c.exit(ds, 0, 'dataset');
  const src = sourceDirOf(ds);
  if (c.ok(src, 'dataset did not say where it wrote the source manifest', tail(ds))) {
    const rows = (await readSourceManifest(src!)).rows;
    const got = new Map(rows.map((x) => [x.id, x]));
    for (const id of ids) c.ok(got.get(id)?.status === 'ok', `${JSON.stringify(id)}: ${got.get(id)?.status ?? 'no row'} ${got.get(id)?.error ?? ''}`);
    c.ok(rows.length === ids.length, `${rows.length} rows for ${ids.length} images`);
    const gen = await cfgen(['generate', '--dataset', `folder:${root}`, '--methods', 'cf-tile', '--quiet'], { roots });
    c.exit(gen, 0, 'generate');
    const dir = corpusDirOf(gen, 'cf-tile');
    if (c.ok(dir, 'generate did not say where the cf-tile corpus is', tail(gen))) {
      const ok = (await corpusRows(dir!)).filter((x) => x.status === 'ok');
      c.ok(ok.length === names.length, `${ok.length} corpus images for ${names.length} train images`);
      c.exit(await cfgen(['verify', dir!], { roots }), 0, 'cfgen verify');
    }
  }
  return { status: c.failures.length ? 'FAILED' : 'held', injected: `${files.length} files named with newline, tab, quotes, $(…), unicode, emoji; class "ñandú"`, detail: c.failures };
}

async function makeInjection(ctx: Ctx): Promise<Outcome> {
  const c = new Checks();
  const base = join(ctx.tmp, 'hostile-make');
  await mkdir(base, { recursive: true });
  const marks: string[] = [];
  const mark = () => { const f = join(base, `pwned-${marks.length}`); marks.push(f); return f; };
  const calls: [string, string][] = [
    ['verify', `DATASET=x;touch ${mark()}`],
    ['verify', `DATASET=$(touch ${mark()})`],
    ['verify', `DATASET=\`touch ${mark()}\``],
    ['verify', `DATASET=x'; touch ${mark()}; echo '`],
    ['verify', `METHODS=cf-grey" ; touch ${mark()} ; "`],
    ['dataset', `DATASET=x && touch ${mark()}`],
    ['generate', `METHODS=cf-grey;touch ${mark()}`],
    ['eval', `RUN=x;touch ${mark()}`],
    ['report', `RUNS=a $(touch ${mark()}) b`],
  ];
  const roots = rootsIn(base);
  for (const [target, assign] of calls) {
    const r = await run(['make', '--no-print-directory', target, assign], { roots, timeoutMs: 120_000 });
    c.noStack(r, `make ${target} ${assign}`);
  }
  for (const f of marks) c.ok(!(await exists(f)), `${f} was created: a make variable ran a command`);
  return { status: c.failures.length ? 'FAILED' : 'held', injected: `${calls.length} make calls with ; $( ) \` ' " && in DATASET, METHODS, RUN, RUNS`, detail: c.failures };
}

export const hostileCases: Case[] = [
  { id: 'hostile/symlink-escape', cost: 6, run: symlinks },
  { id: 'hostile/16000px-png', cost: 15, run: hugePng },
  { id: 'hostile/odd-file-names', cost: 6, run: oddNames },
  { id: 'hostile/make-injection', cost: 15, run: makeInjection },
];
