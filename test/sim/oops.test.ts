import { describe, expect, it } from 'vitest';
import { Oops, P, Resource, Sim, type KFn } from '../../sim/index.ts';

const mk = (name: string): KFn => ({ name, layer: 'toy', sig: `void ${name}(void)`, prov: { kind: 'merged', source: 'test' } });

describe('oops', () => {
  it('surfaces an exception in model code as an oops with the frames open where it happened', () => {
    const sim = new Sim();
    const t = sim.sched.spawn('t');
    let caught: unknown;
    try {
      sim.step(t, '1', 'x', () =>
        sim.call(mk('outer'), () =>
          sim.call(mk('inner'), () => {
            const o = undefined as unknown as { deref: number };
            return o.deref;
          }),
        ),
      );
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(Oops);
    const oops = caught as Oops;
    expect(oops.frames).toEqual(['outer', 'inner']);
    expect(oops.message).toMatch(/^Oops: Cannot read properties of undefined/);
    expect(oops.message).toContain('Call Trace:\n inner\n outer');
    expect(oops.cause).toBeInstanceOf(TypeError);
    // the tracer unwound: the next step starts clean
    expect(sim.tracer.currentDepth).toBe(0);
  });

  it('reports a double lock as a deadlock oops, never a hang', () => {
    const sim = new Sim();
    const t = sim.sched.spawn('t');
    const m = new Resource('group->mutex');
    expect(() =>
      sim.step(t, '1', 'x', () =>
        sim.call(mk('iommu_group_mutex_path'), () => {
          sim.lock(m, P.mutex);
          sim.lock(m, P.mutex);
        }),
      ),
    ).toThrow(/Oops: group->mutex: recursive acquire by t \(self-deadlock\)[\s\S]*iommu_group_mutex_path/);
  });
});
