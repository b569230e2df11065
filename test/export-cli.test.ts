import { describe, it, expect, beforeAll, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../common/paths.ts';
import { exportCommand } from '../pipeline/cli-export.ts';
import { makeExportFixture, type ExportFixture } from './export-fixture.ts';
import { capture } from './fixtures/capture.ts';

afterEach(() => { process.exitCode = undefined; });

describe('export CLI', () => {
  let fx: ExportFixture;
  beforeAll(async () => { fx = await makeExportFixture(); });

  it('--help lists every flag and the output layout', () => {
    const help = exportCommand().helpInformation();
    for (const flag of ['--format', '--dataset', '--methods', '--out', '--shard-rows', '--corpora-root', '--quiet']) expect(help).toContain(flag);
    expect(help).toContain('parquet | webdataset');
  });

  it('exports --methods of --dataset to <corpus>/export/<format>/ and prints one line per corpus', async () => {
    const cap = capture();
    try {
      await exportCommand().parseAsync(['--dataset', 'toy', '--corpora-root', join(fx.tmp, 'corpora'), '--methods', 'cf-tile,f-random', '--format', 'webdataset', '--quiet'], { from: 'user' });
    } finally {
      cap.restore();
    }
    const lines = cap.out.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^${fx.dir('cf-tile')}/export/webdataset: \\d+ rows in 2 webdataset shard\\(s\\), [\\d.]+ MB \\(1 row without an image left out\\), corpus [0-9a-f]{16}`));
    expect(lines[1]).toContain(`${fx.dir('f-random')}/export/webdataset: `);
    expect(cap.err).toBe('');
    const info = JSON.parse(await readFile(join(fx.dir('cf-tile'), 'export', 'webdataset', 'export.json'), 'utf8'));
    expect(info.export_format).toBe('webdataset');
  });

  it('refuses --out with several corpora, and folders with --methods', async () => {
    const base = ['--dataset', 'toy', '--corpora-root', join(fx.tmp, 'corpora'), '--quiet'];
    await expect(exportCommand().parseAsync([...base, '--out', join(fx.tmp, 'x')], { from: 'user' })).rejects.toThrow(/--out names one folder but 2 corpora are exported/);
    await expect(exportCommand().parseAsync([fx.dir('cf-tile'), ...base, '--methods', 'cf-tile'], { from: 'user' })).rejects.toThrow(/give corpus folders or --methods, not both/);
  });

  it('cfgen.ts mounts `export`; a bad --format exits 2 naming the allowed values', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'cfgen.ts'), 'export', '--format', 'zip'], { encoding: 'utf8', cwd: PROJECT_ROOT });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--format: expected one of parquet, webdataset, got "zip"/);
  });
});
