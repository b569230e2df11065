import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';

/**
 * Run `cmd args` in `cwd` and resolve with its exit status; its output goes to `logFile` when given (one log per run,
 * so parallel runs do not interleave), else to this terminal. The benches that drive `cfgen` as a child use it.
 */
export function runChild(cmd: string, args: string[], cwd: string, logFile?: string): Promise<number> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd, stdio: logFile ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'inherit', 'inherit'] });
    if (logFile) {
      const out = createWriteStream(logFile);
      child.stdout!.pipe(out);
      child.stderr!.pipe(out);
    }
    child.on('error', rej);
    child.on('exit', (c) => res(c ?? 1));
  });
}
