import cliProgress from 'cli-progress';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What a training run tells its user while it runs: the run log and the per-epoch progress. */

/**
 * The run's log: every line goes to the caller's sink (stderr by default) at once and to `<runDir>/train.log`.
 * Lines logged before the run folder exists (checks, corpus generation) are held and written first once it does,
 * because the folder is only created when every check has passed.
 */
export class RunLog {
  private file: string | null = null;
  private held: string[] = [];
  /** appends in order: concurrent appendFile calls may land out of order */
  private writes: Promise<void> = Promise.resolve();
  /** The function handed to everything that logs. */
  readonly line: (line: string) => void;

  constructor(sink?: (line: string) => void) {
    const out = sink ?? ((l: string) => process.stderr.write(`${l}\n`));
    this.line = (line: string): void => {
      out(line);
      const stamped = `${new Date().toISOString()} ${line}\n`;
      if (this.file) this.append(stamped);
      else this.held.push(stamped);
    };
  }

  /** Start writing `<runDir>/train.log`, beginning with the lines held so far. */
  attach(runDir: string): void {
    this.file = join(runDir, 'train.log');
    if (this.held.length) this.append(this.held.join(''));
    this.held = [];
  }

  /** Wait for the log file to have every line logged so far. */
  async flush(): Promise<void> {
    await this.writes;
  }

  private append(text: string): void {
    const file = this.file!;
    // The log file is a convenience copy: a full disk must not stop training (checkpoints report their own errors).
    this.writes = this.writes.then(() => appendFile(file, text)).catch(() => undefined);
  }
}

/** A progress bar on a TTY; otherwise a log line every 5 s, so a log file shows the run is alive. */
export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private lastLine = 0;

  constructor(private readonly enabled: boolean, private readonly log: (l: string) => void) {}

  /** Begin an epoch of `total` steps. */
  start(total: number, label: string): void {
    this.lastLine = Date.now();
    if (this.enabled) {
      this.bar = new cliProgress.SingleBar({ format: `${label} [{bar}] {value}/{total} steps | {ips} img/s | loss {loss} | ETA {eta_formatted}`, hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic);
      this.bar.start(total, 0, { ips: '-', loss: '-' });
    }
  }

  /** After each step: `done` of `total` steps, images per second and the running mean loss. */
  update(done: number, total: number, label: string, ips: number, loss: number): void {
    if (this.bar) { this.bar.update(done, { ips: ips.toFixed(0), loss: loss.toFixed(4) }); return; }
    if (Date.now() - this.lastLine > 5000) {
      this.lastLine = Date.now();
      this.log(`${label}: step ${done}/${total}, ${ips.toFixed(0)} img/s, loss ${loss.toFixed(4)}`);
    }
  }

  /** End of the epoch: remove the bar. */
  stop(): void { this.bar?.stop(); this.bar = null; }
}
