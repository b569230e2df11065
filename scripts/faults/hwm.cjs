'use strict';
/**
 * Preloaded (NODE_OPTIONS=--require) into every node process of a measured command: at exit, the main thread writes
 * its peak resident set size (VmHWM of /proc/self/status, kB) to $CFGEN_FAULTS_HWM_DIR/<pid>. Exact, unlike polling,
 * and it needs neither /usr/bin/time nor a parent that waits. A process killed by a signal writes nothing.
 */
const dir = process.env.CFGEN_FAULTS_HWM_DIR;
if (dir && require('node:worker_threads').isMainThread) {
  const fs = require('node:fs');
  process.on('exit', () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
      if (m) fs.writeFileSync(`${dir}/${process.pid}`, `${m[1]} ${process.argv.slice(1).join(' ').replace(/\n/g, ' ')}\n`);
    } catch {
      // nothing to report: the suite then says the figure is missing
    }
  });
}
