import { describe, expect, it } from 'vitest';
import type { Span } from '../../../sim/tracer.ts';
import { intel_svm_bound } from '../../../models/iommu/intel/svm_v8.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { IOMMU_CACHE_INV_TYPE_IOTLB, IOMMU_INV_GRANU_PASID, IOMMU_INV_PASID_FLAGS_PASID } from '../../../models/kernel/uapi/index.ts';
import { PASID, tunnelRig } from './tunnel-rig.ts';

/** every root-to-node path of the span tree */
function paths(spans: readonly Span[], prefix: Span[] = []): Span[][] {
  return spans.flatMap((s) => {
    const p = [...prefix, s];
    return [p, ...paths(s.children, p)];
  });
}

/** is `chain` an ancestor chain (in order, other frames allowed between) of some node? */
function hasAncestorChain(spans: readonly Span[], chain: readonly string[]): Span[] | undefined {
  for (const p of paths(spans)) {
    let i = 0;
    const hit: Span[] = [];
    for (const s of p) {
      if (i < chain.length && s.fn.name === chain[i]) {
        hit.push(s);
        i++;
      }
    }
    if (i === chain.length) return hit;
  }
  return undefined;
}

function find(spans: readonly Span[], name: string): Span[] {
  return paths(spans)
    .map((p) => p[p.length - 1]!)
    .filter((s) => s.fn.name === name);
}

const BIND_CHAIN = [
  'vfio_fops_unl_ioctl',
  'vfio_iommu_type1_ioctl',
  'vfio_iommu_type1_nesting_op',
  'vfio_iommu_handle_pgtbl_op',
  'iommu_group_for_each_dev',
  'vfio_dev_bind_gpasid_fn',
  'iommu_uapi_sva_bind_gpasid',
  'iommu_sva_prepare_bind_data',
];

describe('the v8 bind chain, from the trace', () => {
  it('runs vfio_fops_unl_ioctl → … → iommu_sva_prepare_bind_data as an ancestor chain, below the ioctl syscall', () => {
    const r = tunnelRig({ ramSize: 64 << 10 });
    const { cont } = r.assign();
    const rec = r.m.sim.step(r.task.thread, '1', 'bind', () => expect(r.bind(cont)).toBe(0));
    expect(hasAncestorChain(rec.trace, BIND_CHAIN)).toBeDefined();
    expect(hasAncestorChain(rec.trace, ['__x64_sys_ioctl', 'vfs_ioctl', ...BIND_CHAIN])).toBeDefined();
    // the order matters: the reversed chain is not in the tree
    expect(hasAncestorChain(rec.trace, ['iommu_uapi_sva_bind_gpasid', 'vfio_dev_bind_gpasid_fn'])).toBeUndefined();
    // the data is copied inside iommu_sva_prepare_bind_data, not above it
    const prep = find(rec.trace, 'iommu_sva_prepare_bind_data');
    expect(prep).toHaveLength(1);
    expect(prep[0]!.children.filter((c) => c.fn.layer === 'uaccess')).toHaveLength(2);
    const op = find(rec.trace, 'vfio_iommu_type1_nesting_op')[0]!;
    expect(op.op).toBe('bind');
    expect(op.children.filter((c) => c.fn.layer === 'uaccess')).toHaveLength(1);
  });

  it('checks ownership, then binds: ioasid_get_if_owned before intel_svm_bind_gpasid → … → intel_pasid_setup_nested, both below iommu_uapi_sva_bind_gpasid', () => {
    const r = tunnelRig({ ramSize: 64 << 10 });
    const { cont } = r.assign();
    const rec = r.m.sim.step(r.task.thread, '1', 'bind', () => expect(r.bind(cont)).toBe(0));
    const [uapi] = find(rec.trace, 'iommu_uapi_sva_bind_gpasid');
    expect(uapi).toBeDefined();
    const below = [uapi!];
    expect(hasAncestorChain(below, ['iommu_uapi_sva_bind_gpasid', 'ioasid_get_if_owned'])).toBeDefined();
    expect(hasAncestorChain(below, ['iommu_uapi_sva_bind_gpasid', 'intel_svm_bind_gpasid', 'intel_pasid_setup_nested'])).toBeDefined();
    // ownership is taken before the driver runs, and the reference is dropped after it
    const kids = uapi!.children.map((c) => c.fn.name);
    const at = (n: string) => kids.indexOf(n);
    expect(at('iommu_sva_prepare_bind_data')).toBeGreaterThanOrEqual(0);
    expect(at('iommu_sva_prepare_bind_data')).toBeLessThan(at('ioasid_get_if_owned'));
    expect(at('ioasid_get_if_owned')).toBeLessThan(at('intel_svm_bind_gpasid'));
    expect(at('intel_svm_bind_gpasid')).toBeLessThan(at('ioasid_put'));
    const getOwned = uapi!.children[at('ioasid_get_if_owned')]!;
    const svm = uapi!.children[at('intel_svm_bind_gpasid')]!;
    expect(getOwned.end).toBeLessThanOrEqual(svm.start);
    expect(getOwned.fn.layer).toBe('ioasid');
    expect(svm.fn.layer).toBe('intel-iommu');
    // the ownership check is not in VFIO any more (v8 dropped vfio_mm): nothing above the UAPI layer calls it
    expect(find(rec.trace, 'ioasid_get_if_owned')).toHaveLength(1);
  });

  it('erases the type on the way down: unsigned long (VFIO), void * (the group walk), void __user * (UAPI), then typed', () => {
    const r = tunnelRig({ ramSize: 64 << 10 });
    const { cont } = r.assign();
    const rec = r.m.sim.step(r.task.thread, '1', 'bind', () => expect(r.bind(cont)).toBe(0));
    const chain = hasAncestorChain(rec.trace, [...BIND_CHAIN, 'iommu_check_bind_data'])!;
    expect(chain).toBeDefined();
    expect(chain.map((s) => [s.fn.name, s.fn.uapi?.ctype])).toEqual([
      ['vfio_fops_unl_ioctl', 'unsigned long'],
      ['vfio_iommu_type1_ioctl', 'unsigned long'],
      ['vfio_iommu_type1_nesting_op', 'unsigned long'],
      ['vfio_iommu_handle_pgtbl_op', 'unsigned long'],
      ['iommu_group_for_each_dev', 'void *'],
      ['vfio_dev_bind_gpasid_fn', 'void *'],
      ['iommu_uapi_sva_bind_gpasid', 'void __user *'],
      ['iommu_sva_prepare_bind_data', 'void __user *'],
      ['iommu_check_bind_data', 'struct iommu_gpasid_bind_data *'],
    ]);
    // the erasing spans, exactly: each ctype appears on these names and no others on the bind path
    const byType = (ctype: string) => [...new Set(paths(rec.trace).map((p) => p[p.length - 1]!).filter((s) => s.fn.uapi?.ctype === ctype && s.fn.layer !== 'vfs').map((s) => s.fn.name))];
    expect(byType('unsigned long')).toEqual(['vfio_fops_unl_ioctl', 'vfio_iommu_type1_ioctl', 'vfio_iommu_type1_nesting_op', 'vfio_iommu_handle_pgtbl_op']);
    expect(byType('void *')).toEqual(['iommu_group_for_each_dev', 'vfio_dev_bind_gpasid_fn']);
    expect(byType('void __user *')).toEqual(['iommu_uapi_sva_bind_gpasid', 'iommu_sva_prepare_bind_data']);
    expect(find(rec.trace, 'intel_svm_bind_gpasid')[0]!.fn.uapi?.ctype).toBe('struct iommu_gpasid_bind_data *');
  });

  it('unbind and invalidate take the same VFIO chain to their own UAPI entry points', () => {
    const r = tunnelRig({ ramSize: 64 << 10 });
    const { cont } = r.assign();
    expect(r.bind(cont)).toBe(0);
    const inv = r.m.sim.step(r.task.thread, '1', 'inv', () =>
      expect(r.invalidate(cont, { argsz: 32, version: 1, cache: IOMMU_CACHE_INV_TYPE_IOTLB, granularity: IOMMU_INV_GRANU_PASID, granu: { pasid_info: { flags: IOMMU_INV_PASID_FLAGS_PASID, archid: 0, pasid: BigInt(PASID) } } })).toBe(0),
    );
    expect(
      hasAncestorChain(inv.trace, ['vfio_fops_unl_ioctl', 'vfio_iommu_type1_ioctl', 'vfio_iommu_type1_nesting_op', 'vfio_iommu_invalidate_cache', 'iommu_group_for_each_dev', 'vfio_dev_cache_invalidate_fn', 'iommu_uapi_cache_invalidate', 'intel_iommu_sva_invalidate']),
    ).toBeDefined();
    const un = r.m.sim.step(r.task.thread, '2', 'unbind', () => expect(r.unbind(cont)).toBe(0));
    expect(
      hasAncestorChain(un.trace, ['vfio_fops_unl_ioctl', 'vfio_iommu_type1_ioctl', 'vfio_iommu_type1_nesting_op', 'vfio_iommu_handle_pgtbl_op', 'iommu_group_for_each_dev', 'vfio_dev_unbind_gpasid_fn', 'iommu_uapi_sva_unbind_gpasid', 'intel_svm_unbind_gpasid', 'intel_pasid_tear_down_entry']),
    ).toBeDefined();
  });
});

describe('measured copies of a bind', () => {
  it('a one-device group: 3 copies from user, 80 bytes (8 header + 56 + 16)', () => {
    const r = tunnelRig({ ramSize: 64 << 10 });
    const { cont } = r.assign();
    const rec = r.m.sim.step(r.task.thread, '1', 'bind', () => expect(r.bind(cont)).toBe(0));
    expect(rec.ioctls).toHaveLength(1);
    expect(rec.ioctls[0]).toMatchObject({ name: 'VFIO_IOMMU_NESTING_OP', copiesFromUser: 3, bytesFromUser: 80, copiesToUser: 0, bytesToUser: 0 });
    expect(rec.copiesFromUser).toBe(3);
    expect(rec.bytesFromUser).toBe(80);
  });

  for (const n of [2, 3]) {
    it(`a ${n}-device IOMMU group: 1 + 2N = ${1 + 2 * n} copies, 8 + 72N = ${8 + 72 * n} bytes: the struct is re-copied per device`, () => {
      const r = tunnelRig({ devices: n, ramSize: 64 << 10 });
      const group = r.m.core.iommu_group_get(r.devs[0]!.dev)!;
      for (const d of r.devs) expect(r.m.core.iommu_group_get(d.dev)).toBe(group);
      expect(group.devices).toHaveLength(n);
      const { cont } = r.assign();
      const rec = r.m.sim.step(r.task.thread, '1', 'bind', () => expect(r.bind(cont)).toBe(0));
      expect(rec.ioctls[0]).toMatchObject({ copiesFromUser: 1 + 2 * n, bytesFromUser: 8 + 72 * n });
      expect(find(rec.trace, 'iommu_sva_prepare_bind_data')).toHaveLength(n);
      expect(find(rec.trace, 'vfio_dev_bind_gpasid_fn')).toHaveLength(n);
      expect(find(rec.trace, 'iommu_group_for_each_dev')).toHaveLength(1);
      for (const d of r.devs) expect(pasidEntryOf(r.m.iommu, d.info, PASID)!.present).toBe(true);
      expect(intel_svm_bound(r.m.k, PASID)!.devs).toHaveLength(n);
    });
  }

  it('a 3-device group whose bind fails on the first device copies again for the rollback over all 3', () => {
    const r = tunnelRig({ devices: 3, ramSize: 64 << 10 });
    const { cont } = r.assign();
    const rec = r.m.sim.step(r.task.thread, '1', 'bind', () => expect(r.bind(cont, r.bindData({ addr_width: 39 }))).toBe(-1));
    // header, one bind (56 + 16) that the VT-d driver refuses, then 3 unbinds (56 + 16 each)
    expect(rec.ioctls[0]).toMatchObject({ copiesFromUser: 1 + 2 + 2 * 3, bytesFromUser: 8 + 72 + 72 * 3 });
    for (const d of r.devs) expect(pasidEntryOf(r.m.iommu, d.info, PASID)?.present ?? false).toBe(false);
  });
});
