import { describe, expect, it } from 'vitest';
import { NO_PASID } from '../../../models/hw/vtd/vtd.ts';
import { EBUSY, EINVAL, IS_ERR } from '../../../models/kernel/errno.ts';
import { uptr } from '../../../models/kernel/mm.ts';
import { VHOST_ACCESS_RW, VHOST_IOTLB_INVALIDATE, VHOST_IOTLB_UPDATE, vhost_msg_v2, vhost_vring_state } from '../../../models/kernel/uapi/index.ts';
import { vdpa_register_device } from '../../../models/vhost/vdpa.ts';
import {
  VHOST_SET_BACKEND_FEATURES,
  VHOST_SET_OWNER,
  VHOST_VDPA_GET_GROUP_NUM,
  VHOST_VDPA_GET_VRING_GROUP,
  VHOST_VDPA_SET_GROUP_ASID,
  vhost_vdpa_probe,
} from '../../../models/vhost/vhost_vdpa.ts';
import { bootHost } from '../../helpers/host.ts';

const RAM = 1 << 20;

function rig() {
  const h = bootHost();
  const { m, task, put } = h;
  const d = m.addPciDevice('vdpa-pf', 0x0700, { pasidBits: 20 });
  const vdpa = vdpa_register_device({ name: 'vdpa0', dma_dev: d.dev, groups: [2] });
  const v = vhost_vdpa_probe(m.k, m.core, vdpa);
  const ram = task.mm.mmap(RAM, 'qemu:guest-ram');
  if (IS_ERR(ram)) throw new Error('mmap');
  const fd = m.sys.open(task, v.path);
  expect(fd).toBeGreaterThanOrEqual(0);
  const features = task.mm.mmap(4096, 'qemu:heap');
  if (IS_ERR(features)) throw new Error('mmap');
  task.mm.access(features, Uint8Array.of(0b1010, 0, 0, 0, 0, 0, 0, 0), 0, 8, true); // IOTLB_MSG_V2 | IOTLB_ASID
  expect(m.sys.ioctl(task, fd, VHOST_SET_OWNER, 0)).toBe(0);
  expect(m.sys.ioctl(task, fd, VHOST_SET_BACKEND_FEATURES, features)).toBe(0);
  const iotlb = (type: number, iova: number, size: number) =>
    put(vhost_msg_v2, { type: 2, asid: 0, iotlb: { iova, size, uaddr: ram, perm: VHOST_ACCESS_RW, type } });
  return { ...h, d, v, fd, ram, iotlb };
}

describe('vhost-vdpa: the platform-IOMMU path both designs start from', () => {
  it('maps guest memory written as IOTLB messages: pinned once, DMA lands in the VMM\'s pages', () => {
    const r = rig();
    const { m, task } = r;
    const msg = r.iotlb(VHOST_IOTLB_UPDATE, 0, RAM);
    let ret = 0;
    const step = m.sim.step(task.thread, '1', 'iotlb update', () => {
      ret = m.sys.write(task, r.fd, msg, 72);
    });
    expect(ret).toBe(72);
    // vhost_chr_write_iter copies the type, the ASID and the 32-byte message
    expect([step.copiesFromUser, step.bytesFromUser]).toEqual([3, 40]);
    expect(m.sim.leaks.count('pin')).toBe(RAM / 4096);
    expect(task.mm.pinnedPages).toBe(RAM / 4096);
    expect(r.d.pci.dmaWrite(NO_PASID, 0x3010, Uint8Array.of(4, 2)).status).toBe('ok');
    const back = new Uint8Array(2);
    task.mm.access(uptr(r.ram + 0x3010), back, 0, 2, false);
    expect([...back]).toEqual([4, 2]);
    // an overlapping update is refused; the write reports EFAULT as vhost does for a failed message
    expect(m.sys.write(task, r.fd, r.iotlb(VHOST_IOTLB_UPDATE, 0x1000, 0x1000), 72)).toBe(-1);
    expect(m.sys.write(task, r.fd, r.iotlb(VHOST_IOTLB_INVALIDATE, 0, RAM), 72)).toBe(72);
    expect(m.sim.leaks.count('pin')).toBe(0);
    expect(r.d.pci.dmaWrite(NO_PASID, 0x3010, Uint8Array.of(1)).status).toBe('fault');
  });

  it('answers the group and ASID ioctls and refuses what the device does not have', () => {
    const r = rig();
    const { m, task, put } = r;
    const out = put(vhost_vring_state, { index: 0, num: 0 });
    expect(m.sys.ioctl(task, r.fd, VHOST_VDPA_GET_GROUP_NUM, out)).toBe(0);
    const n = new Uint8Array(4);
    task.mm.access(out, n, 0, 4, false);
    expect(n[0]).toBe(1);
    const st = put(vhost_vring_state, { index: 1, num: 99 });
    expect(m.sys.ioctl(task, r.fd, VHOST_VDPA_GET_VRING_GROUP, st)).toBe(0);
    expect(m.sys.ioctl(task, r.fd, VHOST_VDPA_SET_GROUP_ASID, put(vhost_vring_state, { index: 1, num: 0 }))).toBe(-1);
    expect(task.errno).toBe(EINVAL);
    expect(m.sys.ioctl(task, r.fd, 0xaf00_00ff, 0)).toBe(-1);
  });

  it('allows one opener and releases everything on close', () => {
    const r = rig();
    const { m, task } = r;
    const before = m.sim.leaks.snapshot();
    expect(m.sys.write(task, r.fd, r.iotlb(VHOST_IOTLB_UPDATE, 0, RAM), 72)).toBe(72);
    expect(m.sys.open(task, r.v.path)).toBe(-1);
    expect(task.errno).toBe(EBUSY);
    expect(m.sys.close(task, r.fd)).toBe(0);
    const after = m.sim.leaks.snapshot();
    expect(after.pin ?? 0).toBe(0);
    expect(after['iommu-page'] ?? 0).toBe(0);
    expect((after.fd ?? 0) + 1).toBe(before.fd ?? 0);
    // the device is back in its identity default domain
    expect(m.core.iommu_group_get(r.d.dev)!.domain!.type).toBe('identity');
  });

  it('refuses a multi-group platform-IOMMU device unless a design\'s projection asks for it', () => {
    const { m } = bootHost();
    const d = m.addPciDevice('vdpa-pf', 0x0800, { pasidBits: 20 });
    const vdpa = vdpa_register_device({ name: 'vdpa-cvq', dma_dev: d.dev, groups: [2, 1] });
    expect(() => vhost_vdpa_probe(m.k, m.core, vdpa)).toThrow(/upstream takes 1 and 1/);
    expect(vhost_vdpa_probe(m.k, m.core, vdpa, {}, true).vdpa.nas).toBe(2);
  });
});
