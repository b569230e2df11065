import cliProgress from 'cli-progress';

/**
 * Progress for long runs: a cli-progress bar with rate and ETA when stderr is a terminal, otherwise (logs, CI) one
 * plain line every few seconds.
 */
export interface Progress {
  start(total: number, label: string): void;
  tick(n?: number): void;
  stop(): void;
}

/** A bar on a terminal (or when `tty`), timed lines otherwise, nothing with `quiet`. */
export function createProgress(opts: { tty?: boolean; intervalMs?: number; stream?: NodeJS.WriteStream; quiet?: boolean } = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet) return { start() {}, tick() {}, stop() {} };
  if (opts.tty ?? stream.isTTY) {
    const bar = new cliProgress.SingleBar({
      stream,
      format: '{label} [{bar}] {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}',
      hideCursor: true,
      etaBuffer: 50,
    }, cliProgress.Presets.shades_classic);
    let t0 = 0, done = 0;
    return {
      start(total, label) { t0 = Date.now(); done = 0; bar.start(total, 0, { label, rate: '0.0' }); },
      tick(n = 1) { done += n; bar.update(done, { rate: (done / Math.max(1e-3, (Date.now() - t0) / 1000)).toFixed(1) }); },
      stop() { bar.stop(); },
    };
  }
  const every = opts.intervalMs ?? 5000;
  let t0 = 0, last = 0, done = 0, total = 0, label = '';
  const line = () => {
    const s = (Date.now() - t0) / 1000;
    const rate = done / Math.max(1e-3, s);
    const eta = rate > 0 ? Math.round((total - done) / rate) : NaN;
    stream.write(`${label}: ${done}/${total} rows, ${rate.toFixed(1)} rows/s, ETA ${Number.isFinite(eta) ? `${eta}s` : '?'}\n`);
  };
  return {
    start(t, l) { t0 = last = Date.now(); done = 0; total = t; label = l; },
    tick(n = 1) { done += n; const now = Date.now(); if (now - last >= every) { last = now; line(); } },
    stop() { if (total) line(); },
  };
}
