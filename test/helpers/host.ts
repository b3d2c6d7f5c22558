import { IS_ERR } from '../../models/kernel/errno.ts';
import { uptr, type UserPtr } from '../../models/kernel/mm.ts';
import type { Task } from '../../models/kernel/process.ts';
import { encode, type StructDecl, type UapiInput } from '../../models/kernel/uapi/index.ts';
import { HostMachine, type HostOptions } from '../../models/machine/host.ts';

/** A booted host with one userspace process (the VMM) and a scratch buffer in its memory. */
export function bootHost(opts: HostOptions = {}) {
  const m = new HostMachine({ frames: 1 << 16, ...opts });
  const task = m.k.createProcess('qemu');
  const buf = task.mm.mmap(64 * 1024, 'qemu:heap');
  if (IS_ERR(buf)) throw new Error('mmap');
  let next = 0;
  /** Encodes a uAPI struct into the process's memory, as userspace would; returns its address. */
  const put = (decl: StructDecl, value: UapiInput): UserPtr => {
    const bytes = encode(decl, value);
    const at = uptr(buf + next);
    next += Math.ceil(bytes.length / 8) * 8;
    if (task.mm.access(at, bytes, 0, bytes.length, true)) throw new Error('user buffer full');
    return at;
  };
  /** Runs kernel code as if `task` had made a syscall (sets `current`). */
  const asTask = <T>(fn: () => T, t: Task = task): T => {
    const prev = m.k.current;
    m.k.current = t;
    try {
      return fn();
    } finally {
      m.k.current = prev;
    }
  };
  return { m, task, put, asTask };
}
