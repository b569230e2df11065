import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { holderState, isZombie } from '../common/lock.ts';
import { withPath } from '../manifests/io.ts';

describe('locks: a killed but unreaped process holds nothing', () => {
  it('a zombie holder is dead; a live one is alive', async () => {
    // python forks a child that exits at once and never reaps it: a zombie for as long as the parent sleeps
    const parent = spawn('python3', ['-c', 'import os,time\npid=os.fork()\nif pid==0: os._exit(0)\nprint(pid, flush=True)\ntime.sleep(20)']);
    try {
      const zombie = await new Promise<number>((res, rej) => {
        parent.stdout.once('data', (d) => res(Number(String(d).trim())));
        parent.once('error', rej);
      });
      for (let i = 0; i < 50 && !isZombie(zombie); i++) await new Promise((r) => setTimeout(r, 50));
      expect(isZombie(zombie)).toBe(true);
      expect(holderState({ pid: zombie, hostname: hostname(), started: '' })).toBe('dead');
      expect(holderState({ pid: parent.pid!, hostname: hostname(), started: '' })).toBe('alive');
      expect(isZombie(process.pid)).toBe(false);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

describe('io: a failed write names its file', () => {
  it('adds the path to an errno error that has none, keeps one that has', () => {
    const e = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    expect((withPath(e, '/data/x.png') as { path: string }).path).toBe('/data/x.png');
    const f = Object.assign(new Error('x'), { code: 'ENOSPC', path: '/a/b' });
    expect((withPath(f, '/data/x.png') as { path: string }).path).toBe('/a/b');
    expect(withPath('not an error', '/p')).toBe('not an error');
  });
});
