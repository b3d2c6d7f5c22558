import { Sim } from '../../sim/index.ts';
import { Kernel } from '../../models/kernel/kernel.ts';
import { Syscalls } from '../../models/kernel/syscalls.ts';
import { FlatHostMemory } from './host-memory.ts';

/** A booted kernel over flat memory, with one process. */
export function bootKernel(opts: { seed?: number; frames?: number } = {}) {
  const sim = new Sim({ seed: opts.seed ?? 1 });
  const mem = new FlatHostMemory();
  const k = new Kernel(sim, mem, { firstPfn: 0x1000, nrFrames: opts.frames ?? 256 });
  const sys = new Syscalls(k);
  const task = k.createProcess('qemu');
  return { sim, mem, k, sys, task };
}
