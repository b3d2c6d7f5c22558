import type { Sim } from '../../sim/index.ts';
import { Devfs } from './devfs.ts';
import { PageAllocator, type HostMemory } from './page_alloc.ts';
import { Mm } from './mm.ts';
import { Process, Task } from './process.ts';

export interface KernelOptions {
  /** the frames the kernel may hand out, [firstPfn, firstPfn + nrFrames) */
  firstPfn: number;
  nrFrames: number;
}

/**
 * The host kernel's shared state: the engine, the page allocator, the char devices and the
 * processes. `current` is the task whose syscall is running.
 */
export class Kernel {
  readonly pages: PageAllocator;
  readonly devfs = new Devfs();
  readonly processes: Process[] = [];
  current: Task | null = null;
  private nextPid = 100;

  constructor(
    readonly sim: Sim,
    mem: HostMemory,
    opts: KernelOptions,
  ) {
    this.pages = new PageAllocator(sim, mem, opts.firstPfn, opts.nrFrames);
  }

  createProcess(comm: string): Task {
    const p = new Process(this, this.nextPid++, comm);
    this.processes.push(p);
    return this.addTask(p, comm);
  }

  addTask(p: Process, name: string, opts: { mmGone?: boolean } = {}): Task {
    const noMm = opts.mmGone ? new Mm(`${p.comm}/${name} (no mm)`, this.pages) : null;
    const t = new Task(p.pid + p.tasks.length, p, this.sim.sched.spawn(`${p.comm}/${name}`), noMm);
    p.tasks.push(t);
    return t;
  }

  /** `current`, for code that runs only inside a syscall. */
  cur(): Task {
    if (!this.current) this.sim.oops('no current task outside a syscall');
    return this.current;
  }
}
