import { describe, expect, it } from 'vitest';
import { P } from '../../../sim/index.ts';
import { Mutex, RwSem, down_read, down_write, mutex_lock, mutex_unlock, up_read, up_write } from '../../../models/kernel/locks.ts';
import { bootKernel } from '../../helpers/kernel.ts';

describe('kernel locks on the virtual clock', () => {
  it('a second thread waits on a held mutex for the rest of the hold', () => {
    const { k, sim } = bootKernel();
    const a = k.createProcess('vcpu0');
    const b = k.createProcess('vcpu1');
    const m = new Mutex(k, 'iommu->lock');
    b.thread.clock = 10;
    const ra = sim.step(a.thread, '1.1', 'holder', () => {
      mutex_lock(m);
      sim.charge(P.qiHwCompletion); // a synchronous invalidation under the lock
      mutex_unlock(m);
    });
    const rb = sim.step(b.thread, '1.2', 'waiter', () => {
      mutex_lock(m);
      mutex_unlock(m);
    });
    const lockNs = sim.prices.ns[P.mutex]!;
    const holdEnd = lockNs + sim.prices.ns[P.qiHwCompletion]!;
    expect(ra.contentionNs).toBe(0);
    expect(rb.contentionNs).toBe(holdEnd - (10 + lockNs));
    expect(rb.locks.get('iommu->lock')!.waitNs).toBe(rb.contentionNs);
    expect(ra.locks.get('iommu->lock')!.heldNs).toBe(sim.prices.ns[P.qiHwCompletion]!);
  });

  it('reports a double lock as an oops', () => {
    const { k, sim, task } = bootKernel();
    const m = new Mutex(k, 'container->group_lock');
    expect(() =>
      sim.step(task.thread, '1', 'x', () => {
        mutex_lock(m);
        mutex_lock(m);
      }),
    ).toThrow(/Oops: container->group_lock: recursive acquire/);
  });

  it('lets readers share an rwsem while a writer waits for them', () => {
    const { k, sim } = bootKernel();
    const r1 = k.createProcess('r1');
    const r2 = k.createProcess('r2');
    const w = k.createProcess('w');
    const s = new RwSem(k, 'ioas->iopt.iova_rwsem');
    const hold = (write: boolean) => () => {
      if (write) down_write(s);
      else down_read(s);
      sim.charge(P.kmalloc, 4);
      if (write) up_write(s);
      else up_read(s);
    };
    const a = sim.step(r1.thread, '1', 'r1', hold(false));
    const b = sim.step(r2.thread, '2', 'r2', hold(false));
    const c = sim.step(w.thread, '3', 'w', hold(true));
    expect(a.contentionNs).toBe(0);
    expect(b.contentionNs).toBe(0);
    expect(c.contentionNs).toBe(4 * sim.prices.ns[P.kmalloc]!);
    expect(() => sim.step(r1.thread, '4', 'bad', () => up_read(s))).toThrow(/does not hold it/);
  });
});
