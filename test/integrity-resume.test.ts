import { describe, it, expect, vi, afterEach } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openManifest, type CorpusRow } from '../manifests/index.ts';
import { GENERATE_DEFAULTS, runGenerate, createProgress, donePath, type GenerateOptions } from '../pipeline/generate/index.ts';
import { generateCommand, verifyCommand } from '../pipeline/cli-generate.ts';
import { verifyCorpus } from '../pipeline/verify.ts';
import { makeFixture, treeHashes } from './generate-fixture.ts';

/**
 * Issue #12, defect 3: a resume trusted the done marker. Counts now come from the rows, a marker that disagrees
 * with its rows sends the shard back to be generated, and `generate --verify` re-hashes every finished shard and
 * repairs the damaged ones; `verify` says so.
 */

const options = (sourceDir: string, extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
  ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir, shardSize: 4, methods: ['cf-grey'],
  progress: createProgress({ quiet: true }), log: () => {}, ...extra,
});

async function corpusRows(dir: string): Promise<CorpusRow[]> {
  const rows: CorpusRow[] = [];
  for await (const r of (await openManifest<CorpusRow>(join(dir, 'manifest'))).rows()) rows.push(r);
  return rows;
}

/** Flip one bit near the end of a file: same size, other bytes. */
async function flipBit(file: string): Promise<void> {
  const bytes = await readFile(file);
  bytes[bytes.length - 20] ^= 1;
  await writeFile(file, bytes);
}

afterEach(() => { process.exitCode = undefined; });

describe('resume checks the done marker against the rows', () => {
  it('generate --verify regenerates a shard whose image was modified in place (same size); a plain resume keeps it', async () => {
    const fx = await makeFixture(8);
    const o = options(fx.sourceDir);
    const first = await runGenerate(o);
    const dir = join(fx.sourceDir, '..', 'cf-grey');
    const before = await treeHashes(dir);
    const row = (await corpusRows(dir))[6];
    await flipBit(join(dir, row.image_path!));

    // without --verify only sizes are checked (cheap): documented, and verify reports it
    const plain = await runGenerate(o);
    expect(plain.methods[0].resumedShards).toBe(2);
    expect((await verifyCorpus(dir)).modified).toEqual([row.image_path]);

    const lines: string[] = [];
    const repaired = await runGenerate({ ...o, verify: true, log: (l) => lines.push(l) });
    expect(repaired.methods[0].resumedShards).toBe(1);
    expect(lines).toContain(`cf-grey: shard 1 will be regenerated (${row.image_path} was modified (its SHA-256 differs from the manifest))`);
    expect(repaired.methods[0].corpusId).toBe(first.methods[0].corpusId);
    expect(await treeHashes(dir)).toEqual(before);
    expect((await verifyCorpus(dir)).ok).toBe(true);
  });

  it('counts in corpus.json come from the rows: an edited marker is caught and its shard redone', async () => {
    const fx = await makeFixture(8);
    const o = options(fx.sourceDir);
    await runGenerate(o);
    const dir = join(fx.sourceDir, '..', 'cf-grey');
    const before = await treeHashes(dir);
    const marker = JSON.parse(await readFile(donePath(dir, 0), 'utf8'));
    marker.counts = { ok: 0, skipped: 0, error: 4 };
    await writeFile(donePath(dir, 0), JSON.stringify(marker));
    expect((await verifyCorpus(dir)).problems).toContain('part 0: done marker counts {"error":4,"ok":0,"skipped":0} differ from its rows {"error":0,"ok":4,"skipped":0}');

    const s = await runGenerate(o);
    expect(s.counts).toEqual({ ok: 8, skipped: 0, error: 0 });
    expect(s.exitCode).toBe(0); // the edited marker would have claimed a 50% error rate
    expect(JSON.parse(await readFile(join(dir, 'corpus.json'), 'utf8')).counts).toEqual({ ok: 8, skipped: 0, error: 0 });
    expect(await treeHashes(dir)).toEqual(before);
  });

  it('a marker whose file list leaves out a file does not hide that file\'s damage', async () => {
    const fx = await makeFixture(8);
    const o = options(fx.sourceDir);
    await runGenerate(o);
    const dir = join(fx.sourceDir, '..', 'cf-grey');
    const before = await treeHashes(dir);
    const row = (await corpusRows(dir))[1];
    const marker = JSON.parse(await readFile(donePath(dir, 0), 'utf8'));
    delete marker.files[row.image_path!];
    await writeFile(donePath(dir, 0), JSON.stringify(marker));
    await writeFile(join(dir, row.image_path!), Buffer.alloc(3)); // truncated
    const s = await runGenerate(o);
    expect(s.methods[0].resumedShards).toBe(1);
    expect(await treeHashes(dir)).toEqual(before);
  });
});

describe('verify suggests the repair, and the suggested command repairs', () => {
  it('prints a `generate --verify` command for a damaged corpus that, run as printed, makes it pass', async () => {
    const fx = await makeFixture(8);
    await runGenerate(options(fx.sourceDir, { methods: ['cf-random'], variants: 2, seed: 3, params: { 'cf-random': { grid: '2x2' } } }));
    const dir = join(fx.sourceDir, '..', 'cf-random');
    const before = await treeHashes(dir);
    await flipBit(join(dir, (await corpusRows(dir))[3].image_path!));

    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { out += String(s); return true; });
    try {
      await verifyCommand().parseAsync([dir], { from: 'user' });
    } finally {
      spy.mockRestore();
    }
    expect(process.exitCode).toBe(1);
    const fix = /\n {2}fix: (npx tsx cfgen\.ts generate .*)\n/.exec(out)?.[1];
    expect(fix, out).toBe(`npx tsx cfgen.ts generate --source ${join(fx.sourceDir)} --methods cf-random --variants 2 --seed 3 --shard-size 4 --param 'cf-random.grid=[2,2]' --verify`);

    process.exitCode = undefined;
    // the shell's word splitting and quote removal, for the words this command can hold
    const args = fix!.match(/'[^']*'|\S+/g)!.map((w) => w.replace(/^'(.*)'$/, '$1')).slice(4);
    const quiet = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await generateCommand().parseAsync([...args, '--quiet'], { from: 'user' });
    } finally {
      quiet.mockRestore();
    }
    expect(process.exitCode).toBe(0);
    expect((await verifyCorpus(dir)).ok).toBe(true);
    expect(await treeHashes(dir)).toEqual(before);
  });
});
