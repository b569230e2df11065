import { describe, it, expect, afterEach } from 'vitest';
import { join } from 'node:path';
import { datasetCommand, formatSummary } from '../pipeline/cli-dataset.ts';
import { readSourceManifest } from '../manifests/index.ts';
import { defaultRoot } from '../common/paths.ts';
import { tempDir, writeFolderFixture } from './fixtures/datasets.ts';
import { capture } from './fixtures/capture.ts';

afterEach(() => { process.exitCode = undefined; });

describe('dataset CLI', () => {
  it('--help describes every option with its default', () => {
    const help = datasetCommand().helpInformation();
    for (const flag of ['--data-root', '--corpora-root', '--seed', '--size', '--train', '--val', '--test', '--correlation', '--difficulty', '--fg-scale', '--force', '--strict', '--max-pixels', '--follow-symlinks', '--mask-foreground']) {
      expect(help).toContain(flag);
    }
    // the roots default to the project's folders (not the current folder's), and the help says which
    const flat = help.replace(/\s+/g, ' ');
    expect(flat).toContain(`default: ${defaultRoot('data')};`);
    expect(flat).toContain(`default: ${defaultRoot('corpora')};`);
    expect(flat).toMatch(/synth-waterbirds 0\.95, synth-in9 0\.9, synth-cct 0\.9/);
  });

  it('ingests a folder dataset, prints the summary with error rows, and --strict sets exit status 1', async () => {
    const root = await tempDir();
    const corpora = await tempDir();
    await writeFolderFixture(root);
    const c = capture();
    try {
      await datasetCommand().parseAsync([`folder:${root}`, '--corpora-root', corpora, '--strict'], { from: 'user' });
    } finally {
      c.restore();
    }
    expect(c.out).toMatch(/4 rows, 2 classes \(cat, dog\)/);
    expect(c.out).toMatch(/train: 2/);
    expect(c.out).toMatch(/error rows: 1\n\s+test\/bird\/d\.png: .*class folder "bird" is not a known class/);
    expect(c.err).toMatch(/1 rows have status 'error' \(--strict\)/);
    expect(process.exitCode).toBe(1);
    const { rows } = await readSourceManifest(join(corpora, `folder-${root.split('/').pop()}`, 'source'));
    expect(rows).toHaveLength(4);
  });

  it('builds a tiny synthetic dataset and summarises groups', async () => {
    const data = await tempDir();
    const corpora = await tempDir();
    const c = capture();
    try {
      await datasetCommand().parseAsync(['synth-waterbirds', '--data-root', data, '--corpora-root', corpora, '--size', '32', '--train', '20', '--val', '8', '--test', '8', '--correlation', '0.9'], { from: 'user' });
    } finally {
      c.restore();
    }
    expect(c.out).toMatch(/36 rows, 2 classes \(landbird, waterbird\)/);
    expect(c.out).toMatch(/train: 20 {2}groups: \[y=0,place=0\] 9, \[y=0,place=1\] 1, \[y=1,place=0\] 1, \[y=1,place=1\] 9/);
    expect(c.out).toMatch(/val: 8 {2}groups: \[y=0,place=0\] 2, \[y=0,place=1\] 2, \[y=1,place=0\] 2, \[y=1,place=1\] 2/);
    expect(c.out).toMatch(/error rows: 0/);
    expect(process.exitCode).toBeUndefined();
  });

  it('formatSummary caps the listed error rows', () => {
    const row = (i: number) => ({ id: `r${i}`, split: 'train', label: 0, class_name: 'a', path: 'x', mask_path: null, mask_format: null, boxes: null, group: null, place: null, location: null, variant: null, width: 0, height: 0, status: 'error', error: `bad ${i}` });
    const s = formatSummary(Array.from({ length: 5 }, (_, i) => row(i)), ['a'], 2);
    expect(s).toMatch(/error rows: 5\n\s+r0: bad 0\n\s+r1: bad 1\n\s+\.\.\. and 3 more/);
  });
});
