import { describe, expect, it } from 'vitest';
import { sweepFailNth } from '../../../sim/index.ts';
import { IOASID_REQUEST_ALLOC, ioasid_live_ids } from '../../../models/iommu/ioasid.ts';
import {
  IOMMU_CACHE_INV_TYPE_IOTLB,
  IOMMU_INV_GRANU_PASID,
  IOMMU_INV_PASID_FLAGS_PASID,
  VFIO_TYPE1_NESTING_IOMMU,
  ioasid_alloc_request,
  vfio_iommu_type1_dma_map,
} from '../../../models/kernel/uapi/index.ts';
import { VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_MAP_DMA, VFIO_SET_IOMMU } from '../../../models/vfio/vfio.ts';
import { intel_svm_bound } from '../../../models/iommu/intel/svm_v8.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { PASID, tunnelRig, type TunnelRig } from './tunnel-rig.ts';

type FdName = 'container' | 'group' | 'ioasid';
const ORDERS: FdName[][] = [
  ['container', 'group', 'ioasid'],
  ['container', 'ioasid', 'group'],
  ['group', 'container', 'ioasid'],
  ['group', 'ioasid', 'container'],
  ['ioasid', 'container', 'group'],
  ['ioasid', 'group', 'container'],
];

const entryPresent = (r: TunnelRig) => r.devs.some((d) => pasidEntryOf(r.m.iommu, d.info, PASID)?.present ?? false);

/** container set-up, map, bind, invalidate, unbind, then close in `order`, with fail-nth armed at n */
function flow(n: number, order: FdName[], devices: number) {
  const r = tunnelRig({ ramSize: 64 << 10, devices });
  const base = r.m.sim.leaks.snapshot();
  r.m.sim.failnth.arm(n);
  const fds: Partial<Record<FdName, number>> = {};
  let failedAt = '';
  const step = (name: string, f: () => number) => {
    if (failedAt) return -1;
    const ret = f();
    if (ret < 0) failedAt = name;
    return ret;
  };
  const { sys, task, ioctl } = r;
  const cont = step('open container', () => sys.open(task, '/dev/vfio/vfio'));
  if (cont >= 0) fds.container = cont;
  const grp = step('open group', () => sys.open(task, '/dev/vfio/3'));
  if (grp >= 0) fds.group = grp;
  step('set container', () => ioctl(grp, VFIO_GROUP_SET_CONTAINER, r.int(cont)));
  step('set iommu', () => ioctl(cont, VFIO_SET_IOMMU, VFIO_TYPE1_NESTING_IOMMU));
  step('map', () => ioctl(cont, VFIO_IOMMU_MAP_DMA, r.put(vfio_iommu_type1_dma_map, { argsz: 32, flags: 3, vaddr: BigInt(r.ram), iova: 0n, size: BigInt(r.ramSize) })));
  const io = step('open ioasid', () => sys.open(task, '/dev/ioasid'));
  if (io >= 0) fds.ioasid = io;
  step('alloc', () => ioctl(io, IOASID_REQUEST_ALLOC, r.put(ioasid_alloc_request, { argsz: 16, flags: 0, range: { min: PASID, max: PASID } })));
  step('bind', () => r.bind(cont));
  const bound = !failedAt;
  // the injected failures inside invalidate and unbind are dropped by v8 (always 0)
  step('invalidate', () =>
    r.invalidate(cont, { argsz: 32, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_PASID, granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID, archid: 0, pasid: BigInt(PASID) } } }),
  );
  step('unbind', () => r.unbind(cont));
  const closeRets: number[] = [];
  for (const name of order) if (fds[name] !== undefined) closeRets.push(sys.close(task, fds[name]!));
  const snap = r.m.sim.leaks.snapshot();
  const leaked = Object.fromEntries(
    Object.entries(snap)
      .filter(([k, v]) => v !== (base[k] ?? 0))
      .map(([k, v]) => [k, v - (base[k] ?? 0)]),
  );
  let labels: string[] = [];
  try {
    r.m.sim.leaks.assertClean();
  } catch (e) {
    labels = (e as Error).message.split('\n').slice(1).map((s) => s.trim());
  }
  return {
    failnth: r.m.sim.failnth,
    result: {
      failedAt,
      bound,
      leaked,
      labels,
      closeRets,
      pins: r.m.sim.leaks.count('pin'),
      pinnedPages: task.mm.pinnedPages,
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
          // the documented leak: intel_svm_bind_gpasid's error path frees the new intel_svm but
          // not the ioasid_get() reference V4 14/18 took for it; the PASID stays FREE_PENDING
          expect(result.failedAt, where).toBe('bind');
          expect(result.leaked, where).toEqual({ object: 1 });
          expect(result.labels, where).toEqual(['object: ioasid_data']);
          expect(result.live, where).toEqual([PASID]);
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
