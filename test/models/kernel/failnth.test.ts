import { describe, expect, it } from 'vitest';
import { P, kfn, primitiveCount, sweepFailNth } from '../../../sim/index.ts';
import { EFAULT, ENOENT, ENOMEM, IS_ERR } from '../../../models/kernel/errno.ts';
import type { Kernel } from '../../../models/kernel/kernel.ts';
import { Mutex, mutex_lock, mutex_unlock } from '../../../models/kernel/locks.ts';
import type { UserPtr } from '../../../models/kernel/mm.ts';
import { kfree, kzalloc } from '../../../models/kernel/slab.ts';
import { copy_struct_from_user } from '../../../models/kernel/uaccess.ts';
import { XArray } from '../../../models/kernel/xarray.ts';
import { bootKernel } from '../../helpers/kernel.ts';

const fn = kfn({ name: 'toy_obj_alloc_ioctl', layer: 'toy', sig: 'static int toy_obj_alloc_ioctl(struct toy_ucmd *ucmd)', prov: { kind: 'merged', source: 'test' } });

/**
 * An ioctl-shaped flow in kernel style: copy the user struct, allocate an object and its id under a
 * lock, look a parent up, and unwind on every error.
 */
function flow(k: Kernel, xa: XArray<object>, lock: Mutex, arg: UserPtr): number {
  return k.sim.call(fn, () => {
    const cmd = new Uint8Array(16);
    const r = copy_struct_from_user(k, cmd, 16, arg, 16);
    if (r) return r;
    const obj = kzalloc(k, 'toy_obj');
    if (!obj) return -ENOMEM;
    mutex_lock(lock);
    const id = xa.alloc({ obj }, 1, 100);
    if (id < 0) {
      mutex_unlock(lock);
      kfree(k, obj);
      return id;
    }
    const parent = xa.load(id);
    if (!parent) {
      xa.erase(id);
      mutex_unlock(lock);
      kfree(k, obj);
      return -ENOENT;
    }
    // done: the test destroys it again, as close would
    xa.erase(id);
    mutex_unlock(lock);
    kfree(k, obj);
    return id;
  });
}

describe('fail-nth over a kernel flow', () => {
  it('fails each hook in turn, leaving no leaks and no held locks', () => {
    const steps = sweepFailNth((n) => {
      const { k, sim, task } = bootKernel();
      const buf = task.mm.mmap(4096, 'qemu:heap');
      if (IS_ERR(buf)) throw new Error('mmap');
      const xa = new XArray<object>(k, 'objects');
      const lock = new Mutex(k, 'objects_lock');
      sim.failnth.arm(n);
      let ret = 0;
      const rec = sim.step(task.thread, '1', 'flow', () => {
        k.current = task;
        ret = flow(k, xa, lock, buf);
        k.current = null;
      });
      sim.leaks.assertClean();
      expect(lock.res.owner).toBeNull();
      expect(sim.failnth.hits).toBe(primitiveCount(rec, P.kmalloc) + primitiveCount(rec, P.xaLookup));
      return { failnth: sim.failnth, result: ret };
    });
    expect(steps.map((s) => s.result)).toEqual([-ENOMEM, -ENOMEM, -ENOENT, 1]);
    expect(steps.map((s) => s.fired?.name ?? '-')).toEqual(['toy_obj', 'xa_alloc(objects)', 'xa_load(objects)', '-']);
    expect(EFAULT).toBe(14);
  });
});
