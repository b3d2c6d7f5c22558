import { describe, expect, it } from 'vitest';
import { P, Resource, Sim } from '../../sim/index.ts';

describe('scheduler', () => {
  it('runs the thread with the lowest clock next, ties by thread id', () => {
    const sim = new Sim();
    const a = sim.sched.spawn('a');
    const b = sim.sched.spawn('b');
    const order: string[] = [];
    // b posted first but a has the lower id: the tie goes to a
    sim.sched.post(b, () => order.push('b0'));
    sim.sched.post(a, () => {
      order.push('a0');
      sim.charge(P.syscall, 3); // a's clock moves to 300
    });
    sim.sched.post(a, () => order.push('a1'));
    sim.sched.post(b, () => {
      order.push('b1');
      sim.charge(P.syscall, 1);
    });
    sim.sched.run();
    // a0 @0, b0 @0, b1 @0 → b at 100, then a1 @300
    expect(order).toEqual(['a0', 'b0', 'b1', 'a1']);
    expect(a.clock).toBe(300);
    expect(b.clock).toBe(100);
  });

  it('starts an asynchronous event no earlier than its arrival time', () => {
    const sim = new Sim();
    const cpu = sim.sched.spawn('cpu');
    const seen: number[] = [];
    sim.sched.post(cpu, () => seen.push(sim.now), 5000);
    sim.sched.post(cpu, () => seen.push(sim.now));
    sim.sched.run();
    expect(seen).toEqual([0, 5000]);
  });

  it('makes the waiter on a mutex wait exactly the holder\'s remaining hold time', () => {
    const sim = new Sim();
    const mutex = new Resource('iommu->lock');
    const holder = sim.sched.spawn('holder');
    const waiter = sim.sched.spawn('waiter');
    const lockNs = sim.prices.ns[P.mutex]!;
    const holdNs = 10 * sim.prices.ns[P.kmalloc]!;
    waiter.clock = 40; // arrives while the holder is inside its critical section
    let waited = -1;
    sim.sched.post(holder, () => {
      sim.lock(mutex, P.mutex); // acquired at lockNs
      sim.charge(P.kmalloc, 10); // critical section
      sim.unlock(mutex); // released at lockNs + holdNs
    });
    sim.sched.post(waiter, () => {
      // the lock primitive is charged first, so it reaches the mutex at 40 + lockNs
      sim.lock(mutex, P.mutex);
      waited = sim.thread.contentionNs;
      sim.unlock(mutex);
    });
    sim.sched.run();
    const releasedAt = lockNs + holdNs;
    expect(waited).toBe(releasedAt - (40 + lockNs));
    expect(waiter.contentionNs).toBe(waited);
    expect(holder.contentionNs).toBe(0);
    expect(mutex.contended).toBe(1);
    expect(mutex.heldNs).toBe(holdNs); // the waiter held it for zero time
  });

  it('records contention into the waiting thread\'s step', () => {
    const sim = new Sim();
    const q = new Resource('qi');
    const t1 = sim.sched.spawn('vcpu0');
    const t2 = sim.sched.spawn('vcpu1');
    const r1 = sim.step(t1, '1', 'hold', () => {
      sim.lock(q, P.spinlock);
      sim.charge(P.qiHwCompletion);
      sim.unlock(q);
    });
    const r2 = sim.step(t2, '2', 'wait', () => {
      sim.lock(q, P.spinlock);
      sim.unlock(q);
    });
    expect(r1.contentionNs).toBe(0);
    expect(r2.contentionNs).toBe(sim.prices.ns[P.qiHwCompletion]!);
    expect(r2.locks.get('qi')).toEqual({ taken: 2, heldNs: 0, waitNs: sim.prices.ns[P.qiHwCompletion]! });
  });

  it('a hardware queue occupied by two submitters serialises them', () => {
    const sim = new Sim();
    const q = new Resource('qi-hw');
    const a = sim.sched.spawn('a');
    const b = sim.sched.spawn('b');
    expect(q.occupy(a, 1000)).toBe(0);
    b.clock = 300;
    expect(q.occupy(b, 1000)).toBe(700);
    expect(q.freeAt).toBe(2000);
  });
});
