/**
 * An error a user can act on: it names the file (and row, when there is one) and says how to fix it.
 * CLIs print `message` without a stack trace; anything else is a bug and keeps its stack.
 */
export class UserError extends Error {
  readonly file?: string;
  readonly row?: number | string;
  readonly fix?: string;
  constructor(message: string, opts: { file?: string; row?: number | string; fix?: string } = {}) {
    const where = opts.file ? `${opts.file}${opts.row !== undefined ? ` (row ${opts.row})` : ''}: ` : '';
    super(`${where}${message}${opts.fix ? `\n  fix: ${opts.fix}` : ''}`);
    this.name = 'UserError';
    this.file = opts.file;
    this.row = opts.row;
    this.fix = opts.fix;
  }
}

/** Print a UserError plainly and exit; let real bugs keep their stack. */
export function exitOnUserError(err: unknown): never {
  if (err instanceof UserError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
