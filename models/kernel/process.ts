import type { SimThread } from '../../sim/index.ts';
import { FdTable } from './files.ts';
import type { Kernel } from './kernel.ts';
import { Mm } from './mm.ts';

/** A process: its address space (mm) and its fd table, shared by its tasks. */
export class Process {
  readonly files: FdTable;
  readonly mm: Mm;
  readonly tasks: Task[] = [];

  constructor(
    k: Kernel,
    readonly pid: number,
    readonly comm: string,
  ) {
    this.files = new FdTable(k);
    this.mm = new Mm(comm, k.pages);
  }
}

/** A task (thread) of a process, bound to a simulated thread with its own clock. */
export class Task {
  /** the errno of the last failed syscall, as libc keeps it */
  errno = 0;

  constructor(
    readonly tid: number,
    readonly process: Process,
    readonly thread: SimThread,
  ) {}

  get mm(): Mm {
    return this.process.mm;
  }
}
