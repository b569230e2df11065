/**
 * Damaged and unfinished corpora. On a finished corpus (a seeded one of cf-tile / f-random, the two the training
 * reads) one file is damaged: a manifest part truncated, one byte of an image flipped, an image deleted, a done
 * marker's counts edited, or a copy of a part added under the next part number (a mix of two generations). Each
 * time `cfgen verify` must exit 1 naming the file; `train` must refuse the truncated and the mixed corpus, naming
 * the file, before it writes a checkpoint; `generate --verify` must bring back the bytes of the clean corpus.
 *
 * And `train --no-generate` against a corpus whose `generate` was killed midway: refused with a message saying it
 * is unfinished and how to finish it, never trained on; after the generate is rerun, the same train gives the
 * reference run's bytes. Files are found by name anywhere under the corpus folder (parts `part-N.arrow`, markers
 * `*.done`, images `*.png`), not by their folder, which is changing.
 */
import { copyFile, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Checks, cfgen, findFiles, intIn, resetTo, rng, treeHashes } from '../lib.ts';
import { GENERATE_ARGS, TRAIN_ARGS, datasetRef, generateRef, runTree, trainRef, work, workRoots, type Case, type Ctx, type Outcome } from '../suite.ts';

type Damage = 'truncated-shard' | 'flipped-byte' | 'deleted-image' | 'edited-marker' | 'extra-part';

const pick = <T>(r: () => number, xs: T[]): T => xs[intIn(r, 0, xs.length - 1)];

async function damage(ctx: Ctx, kind: Damage): Promise<Outcome> {
  const c = new Checks();
  const gen = await generateRef(ctx);
  const roots = workRoots(ctx);
  await resetTo(work(ctx), gen.snapshot);
  const r = rng(ctx.seed, `damage/${kind}`);
  const method = pick(r, ['cf-tile', 'f-random']);
  const corpus = join(roots.corpora, 'synth-waterbirds', method);
  const parts = await findFiles(corpus, /(^|\/)part-\d+\.arrow$/);
  const images = await findFiles(corpus, /\.png$/);
  const markers = await findFiles(corpus, /\.done$/);
  let target: string;
  let injected: string;
  switch (kind) {
    case 'truncated-shard': {
      target = pick(r, parts);
      const size = (await stat(target)).size;
      const to = Math.floor(size * (0.1 + 0.8 * r()));
      await truncate(target, to);
      injected = `${method}/${basename(target)} truncated from ${size} to ${to} bytes`;
      break;
    }
    case 'flipped-byte': {
      target = pick(r, images);
      const b = await readFile(target);
      const at = intIn(r, 0, b.length - 1);
      const bit = intIn(r, 0, 7);
      b[at] ^= 1 << bit;
      await writeFile(target, b);
      injected = `bit ${bit} of byte ${at}/${b.length} of ${method}/${basename(target)} flipped`;
      break;
    }
    case 'deleted-image': {
      target = pick(r, images);
      await rm(target);
      injected = `${method}/${basename(target)} deleted`;
      break;
    }
    case 'edited-marker': {
      target = pick(r, markers);
      const m = JSON.parse(await readFile(target, 'utf8')) as { counts?: Record<string, number>; content_hash?: string };
      if (m.counts) m.counts.ok = (m.counts.ok ?? 0) + 1;
      else m.content_hash = `${(m.content_hash ?? '').slice(0, -1)}0`;
      await writeFile(target, `${JSON.stringify(m)}\n`);
      injected = `${method}/${basename(target)}: counts.ok raised by one`;
      break;
    }
    case 'extra-part': {
      const from = pick(r, parts);
      const next = Math.max(...parts.map((p) => Number(/part-(\d+)\.arrow$/.exec(p)![1]))) + 1;
      target = join(dirname(from), `part-${String(next).padStart(5, '0')}.arrow`);
      await copyFile(from, target);
      injected = `${method}/${basename(from)} copied to ${basename(target)}`;
      break;
    }
  }
  const name = basename(target);
  // a part or its marker may be named by file or as "part N"
  const n = /^part-(\d+)\./.exec(name);
  const names = (out: string) => out.includes(name) || (n !== null && new RegExp(`\\bpart ${Number(n[1])}\\b`).test(out));
  const verify = await cfgen(['verify', corpus], { roots });
  c.exit(verify, 1, 'cfgen verify of the damaged corpus');
  c.ok(names(verify.out), `cfgen verify does not name ${name}`, verify.out.trimEnd().split('\n').slice(-6).map((l) => `    | ${l}`));
  if (kind === 'truncated-shard' || kind === 'extra-part') {
    const train = await cfgen(TRAIN_ARGS, { roots });
    c.ok(train.code === 2 || train.code === 3, `train on the damaged corpus: exit ${train.code ?? train.signal}, expected a refusal (2 or 3)`, train.out.trimEnd().split('\n').slice(-6).map((l) => `    | ${l}`));
    c.ok(names(train.out), `train's refusal does not name ${name}`);
    c.noStack(train, 'train');
    c.ok((await findFiles(roots.runs, /weights\.bin$/)).length === 0, 'train wrote a checkpoint from the damaged corpus');
  }
  const repair = await cfgen([...GENERATE_ARGS, '--verify'], { roots });
  c.exit(repair, 0, 'generate --verify');
  c.sameTree(await treeHashes(roots.corpora), gen.tree, 'corpora/ after generate --verify');
  c.exit(await cfgen(['verify', '--dataset', 'synth-waterbirds'], { roots }), 0, 'cfgen verify after the repair');
  return { status: c.failures.length ? 'FAILED' : 'held', injected, detail: c.failures };
}

async function unfinished(ctx: Ctx): Promise<Outcome> {
  const c = new Checks();
  const ds = await datasetRef(ctx);
  const gen = await generateRef(ctx);
  const ref = await trainRef(ctx);
  const roots = workRoots(ctx);
  const w = work(ctx);
  await resetTo(w, ds.snapshot);
  const k = intIn(rng(ctx.seed, 'train/unfinished-corpus'), Math.floor(gen.entries * 0.1), Math.floor(gen.entries * 0.6));
  const killed = await cfgen(GENERATE_ARGS, { roots, kill: { entries: readdirSync(w, { recursive: true }).length + k, dir: w } });
  const finished = (await findFiles(roots.corpora, /(^|\/)corpus\.json$/)).map((f) => basename(dirname(f)));
  const injected = `generate killed at ${k}/${gen.entries} entries (${killed.killed ? 'killed' : 'it had exited'}; finished corpora: ${finished.join(', ') || 'none'}), then train --no-generate`;
  c.ok(!(finished.includes('cf-tile') && finished.includes('f-random')), 'the kill came too late: both corpora the train reads are finished');
  const train = await cfgen(TRAIN_ARGS, { roots });
  c.ok(train.code === 2 || train.code === 3, `train on the unfinished corpus: exit ${train.code ?? train.signal}, expected a refusal (2 or 3)`, train.out.trimEnd().split('\n').slice(-6).map((l) => `    | ${l}`));
  c.ok(/unfinished/.test(train.out), 'train does not say the corpus is unfinished', train.out.trimEnd().split('\n').slice(-4).map((l) => `    | ${l}`));
  c.ok(/generate/.test(train.out), 'train does not say how to finish it (generate)');
  c.noStack(train, 'train');
  c.ok((await findFiles(roots.runs, /weights\.bin$/)).length === 0, 'train wrote a checkpoint from the unfinished corpus');
  // finishing the corpus, then the same train: the reference's bytes
  c.exit(await cfgen(GENERATE_ARGS, { roots }), 0, 'generate rerun');
  c.sameTree(await treeHashes(roots.corpora), gen.tree, 'corpora/ after the generate rerun');
  c.exit(await cfgen(TRAIN_ARGS, { roots }), 0, 'train after the generate rerun');
  c.sameTree(await runTree(roots.runs), ref.tree, 'the run folder');
  return { status: c.failures.length ? 'FAILED' : 'held', injected, detail: c.failures };
}

export const damageCases: Case[] = [
  { id: 'train/unfinished-corpus', cost: 12, run: unfinished },
  ...(['truncated-shard', 'flipped-byte', 'deleted-image', 'edited-marker', 'extra-part'] as const).map((kind): Case => ({
    id: `damage/${kind}`, cost: 8, run: (ctx) => damage(ctx, kind),
  })),
];
