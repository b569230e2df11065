/**
 * Issue #12, training side: a corpus is complete or refused. `train` used to glob whatever `part-*.arrow` files
 * were on disk, take the corpus id from the first one and train on the rest; a truncated part surfaced as Arrow's
 * bare TypeError. Every damage below must stop the run before a run folder exists, naming the file and the fix.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { copyFile, cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { corpusIdFor, encodeManifest, openCorpus, readSourceManifest, shardContentHash, type CorpusRow, type ManifestMetadata } from '../manifests/index.ts';
import { train, type TrainOptions } from '../trainer/train.ts';
import { corpusIdOf, createProgress, GENERATE_DEFAULTS, readShardRows, rowsContentHash, runGenerate } from '../pipeline/generate/index.ts';
import { CORPUS_ROWS_PER_PART, writeToyCorpus, writeToyDataset, type Toy } from './train-fixture.ts';

let toy: Toy;
let work: string;

/** A fresh copy of the toy corpora to damage, and train options that read it. */
async function damaged(name: string): Promise<{ corporaRoot: string; corpus: string; part: (i: number) => string; opts: (o?: Partial<TrainOptions>) => TrainOptions }> {
  const corporaRoot = join(work, name, 'corpora');
  await cp(toy.corporaRoot, corporaRoot, { recursive: true });
  const corpus = join(corporaRoot, toy.dataset, 'cf-tile');
  return {
    corporaRoot, corpus, part: (i) => join(corpus, 'manifest', `part-0000${i}.arrow`),
    opts: (o = {}) => ({
      method: 'cf-tile', dataset: toy.dataset, corporaRoot, runsRoot: join(work, name, 'runs'), runId: 'r', model: 'tiny', size: 16, batch: 4, epochs: 1,
      backend: 'wasm', evaluate: false, generate: false, log: () => undefined, progress: 'off', ...o,
    }),
  };
}

async function refusal(p: Promise<unknown>): Promise<UserError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e, 'the run must be refused').toBeInstanceOf(UserError);
  return e as UserError;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'integ-corpus-'));
  // 8 train originals in parts of 5 rows: part-00000 (5 rows) and part-00001 (3 rows).
  toy = await writeToyDataset(join(work, 'base'), { corpora: ['cf-tile'], side: 20, counts: { train: 8, val: 4, test: 4 } });
  expect(CORPUS_ROWS_PER_PART).toBe(5);
});

describe('train refuses a corpus that is not complete and of one piece', () => {
  it('a deleted part: refused, naming the part, the check and the regeneration; no run folder', async () => {
    const d = await damaged('deleted');
    await rm(d.part(1));
    const e = await refusal(train(d.opts()));
    expect(e.message).toMatch(/corpus cf-tile is incomplete: corpus\.json lists 2 manifest parts and 1 of them are missing \(part-00001\.arrow\)/);
    expect(e.message).toContain(`cfgen.ts verify ${d.corpus}`);
    expect(e.message).toMatch(/generate --source .*--methods cf-tile --force/);
    expect(existsSync(join(work, 'deleted', 'runs', 'r'))).toBe(false);
  });

  it('an extra part corpus.json does not list: refused as a mix of two generations', async () => {
    const d = await damaged('extra');
    await copyFile(d.part(1), d.part(2));
    expect((await refusal(train(d.opts()))).message).toMatch(/does not list \(part-00002\.arrow\): a mix of two generations/);
  });

  it('a part stamped with another corpus id: refused, naming the part', async () => {
    const d = await damaged('other');
    const src = await readSourceManifest(join(d.corporaRoot, toy.dataset, 'source'));
    const other = join(d.corporaRoot, toy.dataset, 'cf-other');
    const rows = (await openCorpus<CorpusRow>(d.corpus)).rows();
    const all: CorpusRow[] = [];
    for await (const r of rows) all.push({ ...r, variant: r.variant + 1 });
    await writeToyCorpus(other, { ...src.metadata, kind: 'corpus', config: { method: 'cf-other' } }, all, CORPUS_ROWS_PER_PART);
    await copyFile(join(other, 'manifest', 'part-00001.arrow'), d.part(1));
    const e = await refusal(train(d.opts()));
    expect(e.message).toContain(d.part(1));
    expect(e.message).toMatch(/belongs to another corpus/);
  });

  it('a truncated part: a UserError naming the file and the fix, not Arrow\'s TypeError', async () => {
    const d = await damaged('truncated');
    const size = (await readFile(d.part(1))).length;
    await truncate(d.part(1), Math.floor(size / 2));
    const e = await refusal(train(d.opts()));
    expect(e.message).toContain(d.part(1));
    expect(e.message).toMatch(/truncated or not an Arrow IPC file/);
    expect(e.message).toMatch(/--force/);
  });

  it('rows edited under the same corpus id: refused by the part\'s content hash, or by the corpus id without a done marker', async () => {
    const d = await damaged('edited');
    const first = await openCorpus<CorpusRow>(d.corpus);
    const rows: CorpusRow[] = [];
    for await (const r of first.rows()) rows.push(r);
    const edited = rows.slice(5).map((r) => ({ ...r, label: 1 - r.label }));
    await writeFile(d.part(1), encodeManifest('corpus', first.metadata as ManifestMetadata, edited));
    const e = await refusal(train(d.opts()));
    expect(e.message).toContain(d.part(1));
    expect(e.message).toMatch(/do not match the content hash recorded for it/);
    await rm(d.part(1).replace(/\.arrow$/, '.done'));
    expect((await refusal(train(d.opts()))).message).toMatch(/rows of corpus cf-tile do not hash to its corpus id/);
  });

  it('an unfinished corpus (parts, no corpus.json): with --no-generate the run says so; the reader refuses it', async () => {
    const d = await damaged('unfinished');
    await rm(join(d.corpus, 'corpus.json'));
    const e = await refusal(train(d.opts()));
    expect(e.message).toMatch(/cf-tile \(unfinished: parts but no corpus\.json/);
    expect(e.message).toMatch(/make generate DATASET=toy METHODS=cf-tile/);
    const r = await refusal(openCorpus(d.corpus));
    expect(r.message).toMatch(/corpus cf-tile is unfinished: 2 manifest part\(s\) but no corpus\.json[\s\S]*fix: finish it/);
  });
});

describe('the manifests contract and the pipeline agree', () => {
  it('a corpus `generate` writes opens and streams through openCorpus, with the same content hashes and corpus id', async () => {
    const corporaRoot = join(work, 'gen', 'corpora');
    await cp(join(toy.corporaRoot, toy.dataset, 'source'), join(corporaRoot, toy.dataset, 'source'), { recursive: true });
    const summary = await runGenerate({
      ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir: join(corporaRoot, toy.dataset, 'source'), sourceRoot: toy.dataRoot,
      methods: ['cf-grey'], shardSize: 3, progress: createProgress({ quiet: true }), log: () => {},
    });
    const dir = join(corporaRoot, toy.dataset, 'cf-grey');
    const c = await openCorpus<CorpusRow>(dir);
    expect(c.info.corpus_id).toBe(summary.methods[0].corpusId);
    expect(c.shards.length).toBe(3);
    let n = 0;
    for await (const _ of c.rows()) n++;
    expect(n).toBe(8);
    const parts = await Promise.all(c.shards.map((s) => readShardRows(s)));
    expect(parts.map((p) => shardContentHash(p))).toEqual(parts.map((p) => rowsContentHash(p)));
    const hashes = parts.map((p) => shardContentHash(p));
    expect(corpusIdFor(c.info.tool_version, c.info.config, c.info.source_digest, hashes)).toBe(corpusIdOf(c.info.tool_version, c.info.config, c.info.source_digest, hashes));
  });
});
