/**
 * A simulated oops: an unexpected exception in model code, reported with the frames that were
 * open. It is never swallowed: the syscall boundary and the scheduler rethrow it.
 */
export class Oops extends Error {
  override name = 'Oops';
  constructor(
    message: string,
    readonly frames: readonly string[],
    override readonly cause?: unknown,
  ) {
    super(`Oops: ${message}\nCall Trace:\n${frames.length ? frames.map((f) => ` ${f}`).reverse().join('\n') : ' (no frames)'}`);
  }
}

/** Thrown by the leak tracker at teardown, naming what leaked. */
export class LeakError extends Error {
  override name = 'LeakError';
}
