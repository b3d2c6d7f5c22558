/** A bad argument detected by a command after parsing: the CLI exits 2 with one line. */
export class UsageError extends Error {
  override name = 'UsageError';
}
