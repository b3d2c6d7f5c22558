import { describe, expect, it } from 'vitest';
import { Sim } from '../../../sim/index.ts';
import { groupInvalidations, failErrno, INV_ALL_PAGES, isWholePasid, MULTI_ENTRY_FLUSHES } from '../../../models/vmm/backend.ts';
import { DeviceLifecycle, DeviceLifecycles } from '../../../models/vmm/lifecycle.ts';

const r = (addr: number, pages = 1) => ({ addr, pages, leaf: false, devtlb: false });

describe('per-device lifecycle (xstate)', () => {
  it('walks unassigned → assigned (bound PASIDs in context) → unassigned → closed', () => {
    const l = new DeviceLifecycle('dsa0', 'vfio-pci');
    expect(l.state).toBe('unassigned');
    l.commit({ op: 'assign' });
    l.commit({ op: 'bind', pasid: 5, root: 0x1000 });
    l.commit({ op: 'bind', pasid: 6, root: 0x2000 });
    l.commit({ op: 'replace', pasid: 5, root: 0x3000 });
    expect([...l.bound]).toEqual([[5, 0x3000], [6, 0x2000]]);
    l.commit({ op: 'unbind', pasid: 6 });
    expect([...l.bound.keys()]).toEqual([5]);
    // unassign with a live binding is legal: the backend unwinds it
    l.commit({ op: 'unassign' });
    expect(l.state).toBe('unassigned');
    expect(l.bound.size).toBe(0);
    l.commit({ op: 'assign' });
    l.commit({ op: 'close' });
    expect(l.state).toBe('closed');
  });

  it('refuses illegal intents with a message naming the device, the intent and the state', () => {
    const l = new DeviceLifecycle('nic0', 'vdpa');
    expect(l.check({ op: 'bind', pasid: 5, root: 0 })).toEqual({
      ok: false, kind: 'illegal', device: 'nic0', state: 'unassigned', message: 'device nic0: cannot bind PASID 5 in state unassigned',
    });
    expect(l.check({ op: 'unassign' })!.message).toBe('device nic0: cannot unassign in state unassigned');
    l.commit({ op: 'assign' });
    expect(l.check({ op: 'assign' })!.message).toBe('device nic0: cannot assign in state assigned');
    expect(l.check({ op: 'replace', pasid: 2, root: 0 })!.message).toBe('device nic0: cannot replace PASID 2 in state assigned: PASID 2 is not bound');
    l.commit({ op: 'bind', pasid: 2, root: 0 });
    expect(l.check({ op: 'bind', pasid: 2, root: 0 })!.message).toBe('device nic0: cannot bind PASID 2 in state assigned: PASID 2 is already bound');
    expect(() => l.commit({ op: 'bind', pasid: 2, root: 0x5000 })).toThrow(/refused intent: device nic0: cannot bind PASID 2 in state assigned: PASID 2 is already bound/);
    expect(() => l.commit({ op: 'unbind', pasid: 3 })).toThrow(/refused intent/);
    expect(l.bound).toEqual(new Map([[2, 0]]));
    l.commit({ op: 'close' });
    for (const op of ['assign', 'unassign', 'close'] as const) expect(l.check({ op })!.message).toBe(`device nic0: cannot ${op} in state closed`);
    expect(() => l.commit({ op: 'assign' })).toThrow(/refused intent/);
  });

  it('data-plane checks read the snapshot without sending events', () => {
    const l = new DeviceLifecycle('dsa0', 'vfio-pci');
    expect(l.checkInvalidate(5)!.message).toBe('device dsa0: cannot invalidate PASID 5 in state unassigned');
    expect(l.checkPageResponse(5)!.message).toBe('device dsa0: cannot answer a page request on PASID 5 in state unassigned');
    l.commit({ op: 'assign' });
    expect(l.checkInvalidate(5)!.message).toBe('device dsa0: cannot invalidate PASID 5 in state assigned: PASID 5 is not bound');
    expect(l.checkPageResponse(5)).toBeNull();
    l.commit({ op: 'bind', pasid: 5, root: 0 });
    expect(l.checkInvalidate(5)).toBeNull();
  });

  it('a table of lifecycles refuses unknown devices and duplicates', () => {
    const t = new DeviceLifecycles([{ name: 'a', kind: 'vfio-pci' }, { name: 'b', kind: 'vdpa' }]);
    expect(t.names()).toEqual(['a', 'b']);
    expect(t.check('zz', { op: 'assign' })!.message).toBe('device zz: no such device');
    expect(t.check('a', { op: 'assign' })).toBeNull();
    expect(() => new DeviceLifecycles([{ name: 'a', kind: 'vfio-pci' }, { name: 'a', kind: 'vdpa' }])).toThrow(/twice/);
  });
});

describe('backend helpers', () => {
  it('groups a guest batch per ioctl: qemu one entry each, batched all at once; counts the flushes where that differs', () => {
    const sim = new Sim();
    const rs = [r(0), r(0x1000), r(0x2000)];
    expect(groupInvalidations(rs, 'qemu', sim)).toEqual([[rs[0]], [rs[1]], [rs[2]]]);
    expect(groupInvalidations(rs, 'batched', sim)).toEqual([rs]);
    expect(groupInvalidations([], 'batched', sim)).toEqual([]);
    // one entry: the same grouping under both options, and not counted
    expect(groupInvalidations([rs[0]!], 'qemu', sim)).toEqual(groupInvalidations([rs[0]!], 'batched', sim));
    expect(sim.recorder.unattributed.counters.get(MULTI_ENTRY_FLUSHES)).toBe(2);
    expect(isWholePasid(r(0, INV_ALL_PAGES))).toBe(true);
  });

  it('words errno failures with the call and errno name', () => {
    expect(failErrno(22, 'IOMMU_HWPT_ALLOC', 'pasid 5')).toEqual({ ok: false, kind: 'errno', errno: 22, call: 'IOMMU_HWPT_ALLOC', message: 'IOMMU_HWPT_ALLOC failed: EINVAL (pasid 5)' });
  });
});
