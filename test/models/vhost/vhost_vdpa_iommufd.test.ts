/**
 * Design B's vhost-vdpa (projection after Cindy Lu's 2023 RFC): the vDPA device binds to the same
 * iommufd as VFIO devices; its virtqueue groups' ASIDs attach there, ASID 0 on the RID and another
 * ASID on the PASID of that number. Driven through backend B, whose vdpa path uses the RFC ioctls.
 */
import { describe, expect, it } from 'vitest';
import { NO_PASID } from '../../../models/hw/vtd/vtd.ts';
import { IS_ERR, errname } from '../../../models/kernel/errno.ts';
import { vhost_vdpa_set_iommufd } from '../../../models/kernel/uapi/index.ts';
import { VHOST_VDPA_SET_IOMMU_FD } from '../../../models/kernel/uapi/ioctls/index.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { HostMachine } from '../../../models/machine/host.ts';
import { iommufd_stack_init } from '../../../models/vfio/device_cdev.ts';
import { vdpa_register_device } from '../../../models/vhost/vdpa.ts';
import { vdpa_iommufd_of, vhost_vdpa_iommufd_probe } from '../../../models/vhost/vhost_vdpa_iommufd.ts';
import { IommufdBackend } from '../../../models/vmm/backend-iommufd.ts';
import { treeMetrics, type Span } from '../../../sim/index.ts';
import { UserCalls } from '../../../models/vmm/backend-iommufd-uapi.ts';
import { vmmGuestTables } from '../../helpers/vmm-guest-tables.ts';

const GUEST_VA = 0x7f00_0000_0000;
const PASID = 3;

function vdpaRig() {
  const m = new HostMachine({ frames: 1 << 16, seed: 5 });
  const d = m.addPciDevice('vnet0', 0x0400, { pasidBits: 8, ats: true });
  iommufd_stack_init(m, []);
  // data vqs 0, 1 in group 0; the control vq in group 1; an ASID per possible PASID (projection)
  const vdpa = vdpa_register_device({ name: 'vnet0', dma_dev: d.dev, groups: [2, 1], nas: 256 });
  const v = vhost_vdpa_iommufd_probe(m.k, m.core, vdpa);
  const task = m.k.createProcess('qemu');
  const size = 4 << 20;
  const hva = task.mm.mmap(size, 'guest0.ram');
  if (IS_ERR(hva)) throw new Error('mmap');
  const pt = vmmGuestTables(m, task, hva, size).firstStage();
  pt.map(GUEST_VA, 0x10_0000, 0x4000);
  const root = pt.root;
  const read = (gpa: number, n: number) => {
    const b = new Uint8Array(n);
    task.mm.access(hva + gpa, b, 0, n, false);
    return b;
  };
  const be = new IommufdBackend(
    { sim: m.sim, sys: m.sys, task, guestRam: { gpa: 0, size, hva }, devices: [{ name: 'vnet0', kind: 'vdpa', hostRid: 0x0400, paths: { vhostVdpa: v.path } }], options: { invalidation: 'qemu' } },
    { vdpaGroupOfPasid: () => 0 },
  );
  return { m, d, v, task, root, read, be };
}

describe('vhost-vdpa on iommufd (RFC projection)', () => {
  it('assign binds through VHOST_VDPA_SET_IOMMU_FD; the data group gets PASID 3 with the guest table while the control vq stays on the RID (GPA)', () => {
    const r = vdpaRig();
    expect(r.be.assign('vnet0')).toMatchObject({ ok: true });
    const s = vdpa_iommufd_of(r.v)!;
    expect([...s.attached.keys()]).toEqual([0]);
    expect([...s.attached.get(0)!.groups].sort()).toEqual([0, 1]);
    // the RID translates GPA: guest RAM mapped once in the IOAS
    expect(r.d.pci.dmaWrite(NO_PASID, 0x2_0000, Uint8Array.of(5)).status).toBe('ok');
    expect([...r.read(0x2_0000, 1)]).toEqual([5]);

    expect(r.be.bindPasid('vnet0', PASID, r.root, { addrWidth: 48, sre: false, wpe: false, eafe: false })).toMatchObject({ ok: true });
    expect([...s.attached.get(PASID)!.groups]).toEqual([0]);
    expect([...s.attached.get(0)!.groups]).toEqual([1]);
    expect(pasidEntryOf(r.m.iommu, r.d.info, PASID)).toMatchObject({ present: true, flptr: r.root });
    expect(r.d.pci.dmaWrite(PASID, GUEST_VA + 0x1008, Uint8Array.of(7, 8)).status).toBe('ok');
    expect([...r.read(0x10_1008, 2)]).toEqual([7, 8]);

    expect(r.be.unbindPasid('vnet0', PASID)).toMatchObject({ ok: true });
    expect(s.attached.has(PASID)).toBe(false);
    expect(pasidEntryOf(r.m.iommu, r.d.info, PASID)?.present ?? false).toBe(false);
    expect(r.be.unassign('vnet0')).toMatchObject({ ok: true });
    expect(vdpa_iommufd_of(r.v)).toBeUndefined();
    expect(r.be.close(['iommufd'], r.task)).toMatchObject({ ok: true });
    expect(r.task.mm.pinnedPages).toBe(0);
    r.m.sim.leaks.assertClean('vdpa on iommufd');
  });

  it('bind, invalidate and unbind: the vhost-vdpa handlers are projection-tagged; the invalidation runs on the shared iommufd (iommufd_fops_ioctl → iommufd_hwpt_invalidate → intel_nested_cache_invalidate_user)', () => {
    const r = vdpaRig();
    expect(r.be.assign('vnet0')).toMatchObject({ ok: true });
    const names = (spans: readonly Span[]): string[] => spans.flatMap((x) => [x.fn.name, ...names(x.children)]);
    const bind = r.m.sim.step(r.task.thread, '1', 'bind', () =>
      expect(r.be.bindPasid('vnet0', PASID, r.root, { addrWidth: 48, sre: false, wpe: false, eafe: false })).toMatchObject({ ok: true }));
    const tb = treeMetrics(bind.trace);
    expect(tb.provenance).toBe('projection');
    // the RFC's own ioctls on the vhost-vdpa fd are named in the results, not shown as numbers
    expect(bind.ioctls.map((i) => i.name)).toEqual(['IOMMU_HWPT_ALLOC', 'VHOST_VDPA_SET_GROUP_ASID', 'VHOST_VDPA_SET_IOMMU_FD']);
    expect(Object.values(tb.handlers).flat()).toContain('vhost-vdpa');

    const inv = r.m.sim.step(r.task.thread, '1', 'invalidate', () =>
      expect(r.be.invalidate('vnet0', PASID, [{ addr: GUEST_VA, pages: 1, leaf: true, devtlb: true }])).toMatchObject({ ok: true }));
    const chain = names(inv.trace);
    const at = (n: string) => chain.indexOf(n);
    expect(at('iommufd_fops_ioctl')).toBeGreaterThanOrEqual(0);
    expect(at('iommufd_fops_ioctl')).toBeLessThan(at('iommufd_hwpt_invalidate'));
    expect(at('iommufd_hwpt_invalidate')).toBeLessThan(at('intel_nested_cache_invalidate_user'));
    expect(chain.some((n) => n.startsWith('vhost_vdpa'))).toBe(false); // no vDPA-specific invalidation path
    expect(treeMetrics(inv.trace).provenance).toBe('merged');

    const unbind = r.m.sim.step(r.task.thread, '1', 'unbind', () => expect(r.be.unbindPasid('vnet0', PASID)).toMatchObject({ ok: true }));
    expect(treeMetrics(unbind.trace).provenance).toBe('projection');
    expect(pasidEntryOf(r.m.iommu, r.d.info, PASID)?.present ?? false).toBe(false);
  });

  it('VHOST_VDPA_SET_IOMMU_FD errnos: a group past the vqs is ENOBUFS; a closed fd EBADF; not an iommufd EINVAL (RFC); unsetting an unset group EINVAL', () => {
    const r = vdpaRig();
    const u = new UserCalls(r.m.sys, r.task);
    const vfd = u.open(r.v.path).rc;
    const ifd = u.open('/dev/iommu').rc;
    const set = (v: Record<string, number>) => u.ioctl(vfd, VHOST_VDPA_SET_IOMMU_FD, vhost_vdpa_set_iommufd, { iommufd: ifd, group_id: 0, ioas_id: 1, ...v });
    expect(errname(set({ group_id: 3 }).errno)).toBe('ENOBUFS');
    expect(errname(set({ iommufd: 77 }).errno)).toBe('EBADF');
    expect(errname(set({ iommufd: vfd }).errno)).toBe('EINVAL');
    expect(errname(set({ iommufd: -1 }).errno)).toBe('EINVAL');
    expect(errname(set({ ioas_id: 1 }).errno)).toBe('EINVAL'); // id 1 is the device just bound: not a pt
    expect(errname(set({ ioas_id: 99 }).errno)).toBe('ENOENT'); // no such IOAS: the bind is undone
    expect(vdpa_iommufd_of(r.v)).toBeUndefined();
    expect(u.close(vfd).rc).toBe(0);
    expect(u.close(ifd).rc).toBe(0);
    r.m.sim.leaks.assertClean('SET_IOMMU_FD errors');
  });
});
