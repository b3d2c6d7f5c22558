import { describe, expect, it } from 'vitest';
import { sweepFailNth } from '../../../sim/index.ts';
import { ioasid_live_ids } from '../../../models/iommu/ioasid.ts';
import { IOMMU_CACHE_INV_TYPE_IOTLB, IOMMU_INV_GRANU_PASID, IOMMU_INV_PASID_FLAGS_PASID } from '../../../models/kernel/uapi/index.ts';
import { intel_svm_bound } from '../../../models/iommu/intel/svm_v8.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { PASID, expectV4BindLeak, leaksSince, setUpThroughBind, tunnelRig, type TunnelFd, type TunnelRig } from './tunnel-rig.ts';

const ORDERS: TunnelFd[][] = [
  ['container', 'group', 'ioasid'],
  ['container', 'ioasid', 'group'],
  ['group', 'container', 'ioasid'],
  ['group', 'ioasid', 'container'],
  ['ioasid', 'container', 'group'],
  ['ioasid', 'group', 'container'],
];

const entryPresent = (r: TunnelRig) => r.devs.some((d) => pasidEntryOf(r.m.iommu, d.info, PASID)?.present ?? false);

/** container set-up, map, bind, invalidate, unbind, then close in `order`, with fail-nth armed at n */
function flow(n: number, order: TunnelFd[], devices: number) {
  const r = tunnelRig({ ramSize: 64 << 10, devices });
  const base = r.m.sim.leaks.snapshot();
  r.m.sim.failnth.arm(n);
  const { fds, cont, step, failedAt } = setUpThroughBind(r);
  const bound = !failedAt();
  // the injected failures inside invalidate and unbind are dropped by v8 (always 0)
  step('invalidate', () =>
    r.invalidate(cont, { argsz: 32, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_PASID, granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID, archid: 0, pasid: BigInt(PASID) } } }),
  );
  step('unbind', () => r.unbind(cont));
  const closeRets: number[] = [];
  for (const name of order) if (fds[name] !== undefined) closeRets.push(r.sys.close(r.task, fds[name]!));
  const { leaked, labels } = leaksSince(r, base);
  return {
    failnth: r.m.sim.failnth,
    result: {
      failedAt: failedAt(),
      bound,
      leaked,
      labels,
      closeRets,
      pins: r.m.sim.leaks.count('pin'),
      pinnedPages: r.task.mm.pinnedPages,
      present: entryPresent(r),
      svm: intel_svm_bound(r.m.k, PASID),
      live: ioasid_live_ids(r.m.k),
    },
  };
}

describe('fail-nth over set-up, map, bind, invalidate, unbind and close, in every close order', () => {
  for (const devices of [1, 2]) {
    for (const order of ORDERS) {
      it(`${devices} device(s), closing ${order.join(' → ')}: 0 leaks, 0 pins, no present PASID entry, except V4's leak on a failed first bind`, () => {
        const results = sweepFailNth((n) => flow(n, order, devices));
        expect(results.length).toBeGreaterThan(20);
        const last = results[results.length - 1]!;
        expect(last.fired).toBeNull();
        expect(last.result.bound).toBe(true);
        expect(last.result.failedAt).toBe('');
        const sawFailureIn = new Set<string>();
        for (const { n, fired, result } of results) {
          const where = `n=${n} ${fired?.site}:${fired?.name} failed at ${result.failedAt || '(nothing)'}`;
          if (result.failedAt) sawFailureIn.add(result.failedAt);
          expect(result.closeRets.every((x) => x === 0), where).toBe(true);
          expect(result.present, where).toBe(false);
          expect(result.svm, where).toBeNull();
          expect(result.pins, where).toBe(0);
          expect(result.pinnedPages, where).toBe(0);
          if (Object.keys(result.leaked).length === 0) {
            expect(result.labels, where).toEqual([]);
            expect(result.live, where).toEqual([]);
            continue;
          }
          expectV4BindLeak(result, where);
        }
        // the sweep reached every stage that can fail
        // (SET_CONTAINER has no fail-nth site; invalidate and unbind swallow theirs, returning 0)
        expect([...sawFailureIn].sort()).toEqual(['alloc', 'bind', 'map', 'open container', 'open group', 'open ioasid', 'set iommu']);
        const leaky = results.filter((x) => Object.keys(x.result.leaked).length).map((x) => x.fired!.name);
        expect(leaky).toContain('intel_svm_dev');
        // failures injected after the bind (invalidate, unbind, close) never leak
        expect(results.some((x) => x.result.bound && x.fired !== null)).toBe(true);
        for (const x of results) if (x.result.bound) expect(x.result.leaked, `n=${x.n} ${x.fired?.name}`).toEqual({});
      });
    }
  }
});
