/**
 * Design B's VMM backend end to end on a HostMachine: every intent is syscalls on the VMM task's
 * fds, with structs encoded into its memory; the guest's first-stage table lives in guest RAM,
 * written through the VMM's frames.
 */
import { describe, expect, it } from 'vitest';
import { IS_ERR } from '../../../models/kernel/errno.ts';
import { HostMachine } from '../../../models/machine/host.ts';
import { iommufd_stack_init } from '../../../models/vfio/device_cdev.ts';
import { INV_ALL_PAGES, type BindFlags, type DeviceSpec, type InvalidationOption } from '../../../models/vmm/backend.ts';
import { IommufdBackend } from '../../../models/vmm/backend-iommufd.ts';
import { vmmGuestTables } from '../../helpers/vmm-guest-tables.ts';

const GUEST_VA = 0x7f00_0000_0000;
const DATA_GPA = 0x10_0000;
const PASID = 5;
const FLAGS: BindFlags = { addrWidth: 48, sre: false, wpe: false, eafe: false };

function rig(o: { invalidation?: InvalidationOption; pri?: boolean } = {}) {
  const m = new HostMachine({ frames: 1 << 16, seed: 3 });
  const d = m.addPciDevice('dsa0', 0x0300, { pasidBits: 20, ats: true, pri: o.pri ?? true });
  iommufd_stack_init(m);
  const task = m.k.createProcess('qemu');
  const size = 4 << 20;
  const hva = task.mm.mmap(size, 'guest0.ram');
  if (IS_ERR(hva)) throw new Error('mmap');
  const { firstStage } = vmmGuestTables(m, task, hva, size);
  const readGuest = (gpa: number, len: number) => {
    const b = new Uint8Array(len);
    task.mm.access(hva + gpa, b, 0, len, false);
    return b;
  };
  const spec: DeviceSpec = { name: 'dsa0', kind: 'vfio-pci', hostRid: 0x0300, paths: { cdev: '/dev/vfio/devices/vfio0' } };
  const be = new IommufdBackend(
    { sim: m.sim, sys: m.sys, task, guestRam: { gpa: 0, size, hva }, devices: [spec], options: { invalidation: o.invalidation ?? 'qemu' } },
    { pri: () => o.pri ?? true },
  );
  const step = <T>(label: string, fn: () => T) => {
    let v!: T;
    const rec = m.sim.step(task.thread, label, label, () => (v = fn()));
    return { v, rec };
  };
  const pt = firstStage();
  pt.map(GUEST_VA, DATA_GPA, 0x8000);
  return { m, d, task, be, pt, firstStage, readGuest, step };
}

const names = (rec: { ioctls: { name: string }[] }) => rec.ioctls.map((i) => i.name);

describe('IommufdBackend (design B)', () => {
  it('assign → bindPasid → DMA lands → invalidate → unbindPasid → unassign → close: 0 leaks, 0 pins', () => {
    const r = rig();
    const a = r.step('assign', () => r.be.assign('dsa0'));
    expect(a.v).toEqual({ ok: true, value: undefined });
    expect(names(a.rec)).toEqual([
      'IOMMU_IOAS_ALLOC',
      'IOMMU_IOAS_MAP',
      'VFIO_DEVICE_BIND_IOMMUFD',
      'IOMMU_GET_HW_INFO',
      'IOMMU_HWPT_ALLOC',
      'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
      'IOMMU_FAULT_QUEUE_ALLOC',
    ]);
    expect(r.be.openFds()).toEqual(['iommufd', 'device:dsa0', 'fault:dsa0']);
    expect(r.task.mm.pinnedPages).toBe(1024); // guest RAM pinned once, in the IOAS

    const b = r.step('bind', () => r.be.bindPasid('dsa0', PASID, r.pt.root, FLAGS));
    expect(b.v.ok).toBe(true);
    // the bind step: a nested HWPT (header: get_user + 48 B, the driver's 24-B vtd_s1; 48 B back),
    // then the PASID attach through the cdev (12 + 4 B in, pt_id 4 B back)
    expect(b.rec.ioctls).toEqual([
      { name: 'IOMMU_HWPT_ALLOC', file: 'iommufd', ret: 0, copiesFromUser: 3, bytesFromUser: 4 + 48 + 24, copiesToUser: 1, bytesToUser: 48 },
      { name: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', file: 'vfio-device-cdev', ret: 0, copiesFromUser: 2, bytesFromUser: 16, copiesToUser: 1, bytesToUser: 4 },
    ]);
    expect(b.rec.syscalls).toBe(2);

    const w = r.d.pci.dmaWrite(PASID, GUEST_VA + 0x1010, Uint8Array.of(0xde, 0xad));
    expect(w.status).toBe('ok');
    expect([...r.readGuest(DATA_GPA + 0x1010, 2)]).toEqual([0xde, 0xad]);

    const ranges = [
      { addr: GUEST_VA, pages: 1, leaf: true, devtlb: true },
      { addr: GUEST_VA + 0x4000, pages: 4, leaf: false, devtlb: true },
      { addr: 0, pages: INV_ALL_PAGES, leaf: false, devtlb: false },
    ];
    const inv = r.step('invalidate', () => r.be.invalidate('dsa0', PASID, ranges));
    expect(inv.v.ok).toBe(true);
    // qemu: one entry per ioctl
    expect(names(inv.rec)).toEqual(['IOMMU_HWPT_INVALIDATE', 'IOMMU_HWPT_INVALIDATE', 'IOMMU_HWPT_INVALIDATE']);
    expect(inv.rec.ioctls.every((i) => i.copiesFromUser === 3 && i.bytesFromUser === 4 + 32 + 24 && i.bytesToUser === 32)).toBe(true);

    const u = r.step('unbind', () => r.be.unbindPasid('dsa0', PASID));
    expect(u.v.ok).toBe(true);
    expect(names(u.rec)).toEqual(['VFIO_DEVICE_DETACH_IOMMUFD_PT', 'IOMMU_DESTROY']);
    expect(r.d.pci.dmaWrite(PASID, GUEST_VA, Uint8Array.of(1)).status).not.toBe('ok');

    const un = r.step('unassign', () => r.be.unassign('dsa0'));
    expect(un.v.ok).toBe(true);
    expect(names(un.rec)).toEqual(['VFIO_DEVICE_DETACH_IOMMUFD_PT', 'IOMMU_DESTROY', 'IOMMU_DESTROY']);
    expect(r.be.openFds()).toEqual(['iommufd']);
    expect(r.be.close(['iommufd'], r.task).ok).toBe(true);
    expect(r.be.openFds()).toEqual([]);
    expect(r.be.lifecycles.get('dsa0')!.state).toBe('closed');
    expect(r.task.mm.pinnedPages).toBe(0);
    expect(r.m.sim.leaks.count('pin')).toBe(0);
    r.m.sim.leaks.assertClean('backend B teardown');
  });

  it('batched sends the guest batch in one ioctl with an array of 24-byte entries', () => {
    const r = rig({ invalidation: 'batched' });
    expect(r.be.assign('dsa0').ok).toBe(true);
    expect(r.be.bindPasid('dsa0', PASID, r.pt.root, FLAGS).ok).toBe(true);
    const ranges = [1, 2, 3, 4].map((i) => ({ addr: GUEST_VA + i * 0x1000, pages: 1, leaf: true, devtlb: false }));
    const inv = r.step('invalidate', () => r.be.invalidate('dsa0', PASID, ranges));
    expect(inv.v.ok).toBe(true);
    expect(inv.rec.ioctls).toHaveLength(1);
    expect(inv.rec.ioctls[0]).toMatchObject({ name: 'IOMMU_HWPT_INVALIDATE', copiesFromUser: 2 + 4, bytesFromUser: 4 + 32 + 4 * 24 });
  });

  it('replacePasid is hitless (a new nested HWPT attached over the old); readFaults / pageResponse answer a page request', () => {
    const r = rig();
    expect(r.be.assign('dsa0').ok).toBe(true);
    expect(r.be.bindPasid('dsa0', PASID, r.pt.root, FLAGS).ok).toBe(true);
    const pt2 = r.firstStage();
    pt2.map(GUEST_VA, 0x20_0000, 0x8000);
    const seen: string[] = [];
    const stop = r.m.vtd.mmio.observe(0x88, (_o, _v, phase) => {
      if (phase === 'before') seen.push(r.d.pci.dmaWrite(PASID, GUEST_VA, Uint8Array.of(1)).status);
    });
    const rep = r.step('replace', () => r.be.replacePasid('dsa0', PASID, pt2.root, FLAGS));
    stop();
    expect(rep.v.ok).toBe(true);
    expect(names(rep.rec)).toEqual(['IOMMU_HWPT_ALLOC', 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', 'IOMMU_DESTROY']);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s === 'ok')).toBe(true);

    // a page request: the device touches an address the guest has not mapped yet
    const missing = GUEST_VA + 0x10_0000;
    const dma = r.d.pci.dmaWrite(PASID, missing, Uint8Array.of(4, 2));
    r.m.sim.sched.run();
    const faults = r.be.readFaults();
    expect(faults.ok && faults.value).toEqual([{ device: 'dsa0', pasid: PASID, addr: missing, read: false, write: true, exec: false, privileged: false, prgi: expect.any(Number), lpig: true }]);
    const f = faults.ok ? faults.value[0]! : null;
    pt2.map(missing, 0x30_0000, 0x1000);
    const resp = r.step('response', () => r.be.pageResponse('dsa0', PASID, f!.prgi, 0));
    expect(resp.v.ok).toBe(true);
    expect(resp.rec.syscalls).toBe(1); // one write()
    r.m.sim.sched.run();
    expect(dma.status).toBe('ok');
    expect([...r.readGuest(0x30_0000, 2)]).toEqual([4, 2]);
    // the same group again: no cookie left
    expect(r.be.pageResponse('dsa0', PASID, f!.prgi, 0).ok).toBe(false);
  });

  it('refuses illegal intents without a syscall, and reports an errno with the call that failed', () => {
    const r = rig({ pri: false });
    const early = r.be.bindPasid('dsa0', PASID, r.pt.root, FLAGS);
    expect(early).toMatchObject({ ok: false, kind: 'illegal' });
    expect(r.be.assign('dsa0').ok).toBe(true);
    expect(r.be.openFds()).toEqual(['iommufd', 'device:dsa0']); // no PRI: no fault queue
    expect(r.be.bindPasid('dsa0', PASID, r.pt.root, FLAGS).ok).toBe(true);
    expect(r.be.bindPasid('dsa0', PASID, r.pt.root, FLAGS)).toMatchObject({ ok: false, kind: 'illegal' });
    // a PASID past the device's width: the attach fails, the nested HWPT is destroyed, nothing recorded
    const bad = r.be.bindPasid('dsa0', 1 << 20, r.pt.root, FLAGS);
    expect(bad).toMatchObject({ ok: false, kind: 'errno', call: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', errno: 22 });
    expect(r.be.lifecycles.get('dsa0')!.bound.has(1 << 20)).toBe(false);
    expect(r.be.unassign('dsa0').ok).toBe(true);
    expect(r.be.close(['iommufd'], r.task).ok).toBe(true);
    r.m.sim.leaks.assertClean('after a failed bind');
  });

  it('close from another process: the fds are handed over and the last close runs there; nothing leaks', () => {
    const r = rig();
    expect(r.be.assign('dsa0').ok).toBe(true);
    expect(r.be.bindPasid('dsa0', PASID, r.pt.root, FLAGS).ok).toBe(true);
    const mgmt = r.m.k.createProcess('libvirtd');
    expect(r.be.close(['device:dsa0', 'fault:dsa0', 'iommufd'], mgmt).ok).toBe(true);
    expect(r.task.process.files.openFds()).toEqual([]);
    expect(mgmt.process.files.openFds()).toEqual([]);
    expect(r.be.lifecycles.get('dsa0')!.state).toBe('closed');
    expect(r.task.mm.pinnedPages).toBe(0);
    r.m.sim.leaks.assertClean('backend B close from libvirtd');
  });
});
