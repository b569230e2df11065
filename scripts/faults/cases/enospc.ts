/**
 * A full disk. The suite mounts a 2 MB tmpfs (`mount -t tmpfs -o size=2m`; where that is not allowed, the cases
 * are skipped and say why), puts the command's output root on it, and fills it with a ballast file that leaves a
 * seeded amount of room, less than the command needs. The command must exit 3 with a message naming a path on
 * that disk (no stack trace), release its locks, and lose nothing already on the disk; once the ballast is removed
 * the same command must finish, with the bytes of a run that never ran out of space.
 */
import { spawnSync } from 'node:child_process';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { statfsSync } from 'node:fs';
import { join } from 'node:path';
import { Checks, cfgen, findFiles, intIn, resetTo, rng, tail, treeHashes, type Roots } from '../lib.ts';
import { DATASET_ARGS, GENERATE_ARGS, datasetRef, generateRef, work, workRoots, type Case, type Ctx, type Outcome } from '../suite.ts';

const SIZE = '2m';

/** Mounts a small tmpfs at `dir`; returns null, or why it could not. */
function mountSmall(dir: string): string | null {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error) return `mount could not run (${r.error.message})`;
  if (r.status !== 0) return `mount -t tmpfs refused here (${(r.stderr || r.stdout).trim() || `exit ${r.status}`})`;
  return null;
}

function unmount(dir: string): void {
  if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
}

const freeKb = (dir: string) => { const s = statfsSync(dir); return Math.floor((s.bavail * s.bsize) / 1024); };

/** Fills `disk` so that `kb` kB stay free; returns the ballast file (or null when there was less room already). */
async function ballast(disk: string, kb: number): Promise<string | null> {
  const fill = freeKb(disk) - kb;
  if (fill <= 0) return null;
  const file = join(disk, 'ballast');
  await writeFile(file, Buffer.alloc(fill * 1024));
  return file;
}

const ENOSPC = /no space left on the device/;
const TEMP = (rel: string) => /\.tmp-/.test(rel) || rel.startsWith('ballast');

async function onSmallDisk(ctx: Ctx, name: string, body: (disk: string) => Promise<Outcome>): Promise<Outcome> {
  const disk = join(ctx.tmp, `small-${name}`);
  await mkdir(disk, { recursive: true });
  const why = mountSmall(disk);
  if (why) return { status: 'skipped', injected: `ENOSPC on a ${SIZE} tmpfs`, detail: [`skipped: ${why}`] };
  try {
    return await body(disk);
  } finally {
    unmount(disk);
  }
}

async function generateFull(ctx: Ctx): Promise<Outcome> {
  const ds = await datasetRef(ctx);
  const gen = await generateRef(ctx);
  return onSmallDisk(ctx, 'generate', async (disk) => {
    const c = new Checks();
    await resetTo(work(ctx), ds.snapshot);
    // corpora (the source manifest included) on the small disk, the dataset where the reference had it
    const roots: Roots = { ...workRoots(ctx), corpora: join(disk, 'corpora') };
    await cp(workRoots(ctx).corpora, roots.corpora, { recursive: true, preserveTimestamps: true });
    const need = 1500; // kB the three corpora take on a tmpfs (4 kB per file at least)
    const room = intIn(rng(ctx.seed, 'enospc/generate'), 150, 1200);
    const file = await ballast(disk, room);
    const full = await cfgen(GENERATE_ARGS, { roots });
    const injected = `corpora root on a ${SIZE} tmpfs with ${room} kB free (generate needs ~${need} kB): first run ${full.code === 3 ? 'exit 3' : `exit ${full.code ?? full.signal}`}`;
    c.exit(full, 3, 'generate on the full disk');
    c.ok(ENOSPC.test(full.out), 'the message does not say the disk is full', tail(full, 4));
    c.ok(full.out.includes(disk), `the message names no path on the full disk (${disk})`, tail(full, 3));
    c.noStack(full, 'generate');
    c.ok((await findFiles(roots.corpora, /(^|\/)\.lock$/)).length === 0, 'generate left a lock behind');
    // manifest parts are left out: the finished run stamps every part with the corpus id, so their bytes change
    const before = await treeHashes(roots.corpora, { skip: (rel) => TEMP(rel) || rel.endsWith('.arrow') });
    const markers = [...before.keys()].filter((f) => f.endsWith('.done')).length;
    if (file) await rm(file);
    const rerun = await cfgen(GENERATE_ARGS, { roots });
    c.exit(rerun, 0, 'generate once space was freed');
    c.ok(markers === 0 || /resumed [1-9]/.test(rerun.out), `${markers} shards were finished before the disk filled up, but the rerun resumed none`, tail(rerun, 4));
    const after = await treeHashes(roots.corpora);
    const lost = [...before].filter(([f, h]) => after.get(f) !== h).map(([f]) => `    lost or changed  ${f}`);
    c.ok(lost.length === 0, 'files written before the disk filled up were lost or changed', lost.slice(0, 6));
    c.sameTree(after, gen.tree, 'corpora/');
    c.exit(await cfgen(['verify', '--dataset', 'synth-waterbirds'], { roots }), 0, 'cfgen verify');
    return { status: c.failures.length ? 'FAILED' : 'held', injected: `${injected}, ${before.size} files and ${markers} finished shards on disk`, detail: c.failures };
  });
}

async function datasetFull(ctx: Ctx): Promise<Outcome> {
  return onSmallDisk(ctx, 'dataset', async (disk) => {
    const c = new Checks();
    const roots: Roots = { data: join(disk, 'data'), corpora: join(disk, 'corpora'), runs: join(ctx.tmp, 'runs-unused') };
    const keep = (rel: string) => rel.includes('/keep/') || rel.startsWith('ballast');
    // the reference: the same command on the same (empty) disk, with room
    const clean = await cfgen(DATASET_ARGS, { roots });
    if (clean.code !== 0) throw new Error(`the reference dataset run on the tmpfs failed:\n${tail(clean).join('\n')}`);
    const want = await treeHashes(disk);
    const need = Math.ceil(2048 - freeKb(disk));
    await resetTo(roots.data, null);
    await resetTo(roots.corpora, null);
    // something already on the disk: another dataset and its source manifest
    await mkdir(join(roots.data, 'keep', 'x'), { recursive: true });
    await writeFile(join(roots.data, 'keep', 'x', 'a.txt'), 'an image of another dataset\n');
    await mkdir(join(roots.corpora, 'keep', 'source'), { recursive: true });
    await writeFile(join(roots.corpora, 'keep', 'source', 'b.txt'), 'its source manifest\n');
    const sentinels = await treeHashes(disk, { skip: (rel) => !keep(rel) || rel.startsWith('ballast') });
    const room = intIn(rng(ctx.seed, 'enospc/dataset'), 100, Math.max(150, need - 200));
    const file = await ballast(disk, room);
    const full = await cfgen(DATASET_ARGS, { roots });
    const injected = `data and corpora roots on a ${SIZE} tmpfs with ${room} kB free (dataset needs ~${need} kB): first run ${full.code === 3 ? 'exit 3' : `exit ${full.code ?? full.signal}`}`;
    c.exit(full, 3, 'dataset on the full disk');
    c.ok(ENOSPC.test(full.out), 'the message does not say the disk is full', tail(full, 4));
    c.ok(full.out.includes(disk), `the message names no path on the full disk (${disk})`, tail(full, 3));
    c.noStack(full, 'dataset');
    if (file) await rm(file);
    const rerun = await cfgen(DATASET_ARGS, { roots });
    c.exit(rerun, 0, 'dataset once space was freed');
    const after = await treeHashes(disk);
    const lost = [...sentinels].filter(([f, h]) => after.get(f) !== h).map(([f]) => `    lost or changed  ${f}`);
    c.ok(lost.length === 0, 'files already on the disk were lost or changed', lost);
    c.sameTree(await treeHashes(disk, { skip: keep }), want, 'data/ + corpora/ against a run with room');
    return { status: c.failures.length ? 'FAILED' : 'held', injected, detail: c.failures };
  });
}

export const enospcCases: Case[] = [
  { id: 'enospc/dataset', cost: 8, run: datasetFull },
  { id: 'enospc/generate', cost: 8, run: generateFull },
];
