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
    /**
     * set for a task that has no mm of its own: one past exit_mm (do_exit drops the mm before it
     * releases the files) or a kernel thread. It stands in for current->mm == NULL: an mm with
     * nothing mapped, which no lookup keyed on an mm finds and every user access faults in.
     */
    private readonly noMm: Mm | null = null,
  ) {}

  get mm(): Mm {
    return this.noMm ?? this.process.mm;
  }
}
