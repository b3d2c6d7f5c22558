import { describe, expect, it } from 'vitest';
import { P, Sim, primitiveCount, sweepFailNth, type KFn } from '../../sim/index.ts';

const ENOMEM = 12;
const ENOENT = 2;
const fn: KFn = { name: 'toy_obj_create', layer: 'toy', sig: 'int toy_obj_create(void)', prov: { kind: 'merged', source: 'test' } };

/**
 * A toy flow in kernel style: allocate three objects, look one up, and unwind everything on error.
 * It returns −errno like the kernel, and frees what it allocated on both paths.
 */
function toyFlow(sim: Sim): number {
  const held: number[] = [];
  const unwind = (): void => {
    while (held.length) {
      sim.charge(P.kfree);
      sim.leaks.release('object', held.pop()!);
    }
  };
  return sim.call(fn, () => {
    for (let i = 0; i < 3; i++) {
      const err = sim.allocHook(`obj${i}`);
      if (err) {
        unwind();
        return -err;
      }
      held.push(sim.leaks.track('object', `obj${i}`));
    }
    const err = sim.lookupHook('obj1');
    if (err) {
      unwind();
      return -err;
    }
    unwind(); // success: the flow releases at its end too
    return 0;
  });
}

describe('fail-nth', () => {
  it('sweeps n = 1.. until nothing fires, with 0 leaks and hook hits equal to the recorded primitives', () => {
    const steps = sweepFailNth((n) => {
      const sim = new Sim();
      sim.failnth.arm(n);
      const t = sim.sched.spawn('t');
      let ret = 1;
      const rec = sim.step(t, '1', 'toy', () => {
        ret = toyFlow(sim);
      });
      sim.leaks.assertClean();
      expect(sim.failnth.hits).toBe(primitiveCount(rec, P.kmalloc) + primitiveCount(rec, P.xaLookup));
      expect(sim.failnth.allocHits).toBe(primitiveCount(rec, P.kmalloc));
      expect(sim.failnth.lookupHits).toBe(primitiveCount(rec, P.xaLookup));
      return { failnth: sim.failnth, result: ret };
    });
    expect(steps.map((s) => s.result)).toEqual([-ENOMEM, -ENOMEM, -ENOMEM, -ENOENT, 0]);
    expect(steps.map((s) => s.fired?.name ?? null)).toEqual(['obj0', 'obj1', 'obj2', 'obj1', null]);
  });

  it('an injection point (iommufd_should_fail) takes its turn in the count and charges nothing', () => {
    const sim = new Sim();
    const t = sim.sched.spawn('t');
    sim.failnth.arm(2);
    const seen: boolean[] = [];
    const rec = sim.step(t, '1', 'inject', () => {
      expect(sim.allocHook('obj')).toBe(0);
      seen.push(sim.injectHook('iommufd_should_fail(pin)'), sim.injectHook('iommufd_should_fail(pin)'));
    });
    expect(seen).toEqual([true, false]);
    expect(sim.failnth.fired).toEqual({ n: 2, site: 'inject', name: 'iommufd_should_fail(pin)' });
    expect([sim.failnth.hits, sim.failnth.allocHits, sim.failnth.injectHits]).toEqual([3, 1, 2]);
    // only the allocation was charged
    expect(primitiveCount(rec, P.kmalloc)).toBe(1);
    expect(primitiveCount(rec, P.xaLookup)).toBe(0);
  });

  it('names the leak when a flow forgets to free', () => {
    const sim = new Sim();
    sim.leaks.track('pin', 'ioas 1 page 0x1000');
    expect(() => sim.leaks.assertClean('close')).toThrow(/close: 1 leaked\n {2}pin: ioas 1 page 0x1000/);
  });

  it('refuses to release what is not live', () => {
    const sim = new Sim();
    const h = sim.leaks.track('fd', 'fd 3');
    sim.leaks.release('fd', h);
    expect(() => sim.leaks.release('fd', h)).toThrow(/not live/);
  });
});
