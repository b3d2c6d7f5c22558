import { describe, expect, it } from 'vitest';
import { treeMetrics } from '../../../sim/index.ts';
import { EINVAL } from '../../../models/kernel/errno.ts';
import {
  IOMMU_FAULT_PAGE_REQ,
  IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE,
  IOMMU_FAULT_PAGE_REQUEST_PASID_VALID,
  IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID,
  IOMMU_FAULT_PERM_WRITE,
  IOMMU_PAGE_RESP_PASID_VALID,
  IOMMU_PAGE_RESP_SUCCESS,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_FLAG_CAPS,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_OFFSET_SHIFT,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  decode,
  encode,
  iommu_fault,
  iommu_page_response,
  vfio_irq_info,
  vfio_irq_set,
  vfio_region_dma_fault,
  vfio_region_info,
} from '../../../models/kernel/uapi/index.ts';
import { VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_SET_IRQS } from '../../../models/kernel/uapi/ioctls/vfio.ts';
import { VFIO_GROUP_GET_DEVICE_FD } from '../../../models/vfio/vfio.ts';
import { iommu_pending_faults } from '../../../models/iommu/iommu_uapi.ts';
import { GUEST_VA, PASID, tunnelRig } from './tunnel-rig.ts';

const MISSING = GUEST_VA + 0x10_0000; // not in the guest's first-stage table yet
const FAULT_GPA = 0x20_0000;
const off = (index: number) => index * 2 ** VFIO_PCI_OFFSET_SHIFT;

/** walks a VFIO capability chain in `bytes` starting at `first`: [id, offset] pairs */
function chain(bytes: Uint8Array, first: number): [number, number][] {
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  const out: [number, number][] = [];
  for (let at = first; at; at = v.getUint32(at + 4, true)) out.push([v.getUint16(at, true), at]);
  return out;
}

function faultRig() {
  const r = tunnelRig({ pri: true, ramSize: 4 << 20 });
  const fds = r.assign();
  expect(r.bind(fds.cont)).toBe(0);
  const dev = r.ioctl(fds.grp, VFIO_GROUP_GET_DEVICE_FD, r.putBytes(new TextEncoder().encode(`${r.devs[0]!.dev.bdf}\0`)));
  expect(dev).toBeGreaterThan(0);
  const u32 = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    return r.putBytes(b);
  };
  return { ...r, ...fds, dev, u32 };
}

describe("the era's fault path: Eric Auger's v13 DMA fault regions on the vfio-pci device fd", () => {
  it('describes both regions and the DMA_FAULT IRQ through GET_REGION_INFO / GET_IRQ_INFO capability chains', () => {
    const r = faultRig();
    // first call: argsz 32 comes back raised to what the chain needs
    const small = r.put(vfio_region_info, { argsz: 32, index: 9 });
    expect(r.ioctl(r.dev, VFIO_DEVICE_GET_REGION_INFO, small)).toBe(0);
    const need = decode(vfio_region_info, r.readBytes(small, 32)).argsz as number;
    // type cap 16 + fault cap 12 + sparse mmap 16 + one area 16
    expect(need).toBe(32 + 16 + 12 + 32);
    for (const [index, size, capId] of [
      [9, 36864, 6],
      [10, 16384, 7],
    ] as const) {
      const big = r.putBytes(new Uint8Array(need));
      r.task.mm.access(big, encode(vfio_region_info, { argsz: need, index }), 0, 32, true);
      expect(r.ioctl(r.dev, VFIO_DEVICE_GET_REGION_INFO, big)).toBe(0);
      const bytes = r.readBytes(big, need);
      const info = decode(vfio_region_info, bytes.subarray(0, 32));
      expect(info).toMatchObject({ index, cap_offset: 32, size: BigInt(size), offset: BigInt(off(index)) });
      expect(info.flags).toBe(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS);
      const caps = chain(bytes, 32);
      expect(caps.map(([id]) => id)).toEqual([2, capId, 1]);
      const v = new DataView(bytes.buffer);
      expect([v.getUint32(32 + 8, true), v.getUint32(32 + 12, true)]).toEqual([4, index - 8]); // NESTED, DMA_FAULT / _RESPONSE
      const sparse = caps[2]![1];
      expect([Number(v.getBigUint64(sparse + 16, true)), Number(v.getBigUint64(sparse + 24, true))]).toEqual([4096, size - 4096]);
    }
    expect(r.ioctl(r.dev, VFIO_DEVICE_GET_REGION_INFO, r.put(vfio_region_info, { argsz: 32, index: 11 }))).toBe(-1);
    expect(r.task.errno).toBe(EINVAL);
    const irq = r.putBytes(new Uint8Array(64));
    r.task.mm.access(irq, encode(vfio_irq_info, { argsz: 64, index: 5 }), 0, 20, true);
    expect(r.ioctl(r.dev, VFIO_DEVICE_GET_IRQ_INFO, irq)).toBe(0);
    const ib = r.readBytes(irq, 36);
    expect(decode(vfio_irq_info, ib.subarray(0, 20))).toMatchObject({ flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_FLAG_CAPS, count: 1, cap_offset: 20 });
    expect([...new Uint32Array(ib.slice(20, 36).buffer)]).toEqual([0x0001_0003, 0, 1, 1]); // cap TYPE v1, NESTED, DMA_FAULT
  });

  it('round trip: DMA with PRI → PRQ → io-pgfault → fault region → eventfd → userspace record → response region → retried DMA', () => {
    const r = faultRig();
    const base = off(9);
    const rbase = off(10);
    const efd = r.sys.eventfd(r.task);
    expect(efd).toBeGreaterThan(0);
    const set = r.putBytes(encode(vfio_irq_set, { argsz: 24, flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index: 5, start: 0, count: 1, data: new Uint8Array(new Int32Array([efd]).buffer) }));
    expect(r.ioctl(r.dev, VFIO_DEVICE_SET_IRQS, set)).toBe(0);

    const dma = r.devs[0]!.pci.dmaWrite(PASID, MISSING + 0x10, Uint8Array.of(0xca, 0xfe));
    expect(dma.status).toBe('pending');
    const fault = r.m.sim.step(r.m.prqThread, '1', 'page request', () => r.m.sim.sched.run());
    expect(r.sys.poll(r.task, efd) & 1).toBe(1);
    const tm = treeMetrics(fault.trace);
    expect(tm.layers).toEqual(expect.arrayContaining(['intel-iommu', 'iommu-core', 'iommu-uapi', 'vfio-pci', 'eventfd']));
    expect(iommu_pending_faults(r.devs[0]!.dev)).toBe(1);

    // userspace: the eventfd, then the header and the record by pread
    const cnt = r.putBytes(new Uint8Array(8));
    expect(r.sys.read(r.task, efd, cnt, 8)).toBe(8);
    const hdr = r.putBytes(new Uint8Array(20));
    expect(r.sys.pread(r.task, r.dev, hdr, 20, base)).toBe(20);
    const h = decode(vfio_region_dma_fault, r.readBytes(hdr, 20));
    expect(h).toEqual({ tail: 0, entry_size: 64, nb_entries: 512, offset: 4096, head: 1 });
    const rec = r.putBytes(new Uint8Array(64));
    expect(r.sys.pread(r.task, r.dev, rec, 64, base + 4096)).toBe(64);
    const f = decode(iommu_fault, r.readBytes(rec, 64));
    expect(f.type).toBe(IOMMU_FAULT_PAGE_REQ);
    const prm = f.prm as Record<string, unknown>;
    expect(prm).toMatchObject({ pasid: PASID, perm: IOMMU_FAULT_PERM_WRITE, addr: BigInt(MISSING) });
    expect(prm.flags).toBe(IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE | IOMMU_FAULT_PAGE_REQUEST_PASID_VALID | IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID);
    // consume: tail = 1; only a 4-byte write at 0 is accepted
    expect(r.sys.pwrite(r.task, r.dev, r.u32(1), 4, base)).toBe(4);
    expect(r.sys.pwrite(r.task, r.dev, r.u32(1), 4, base + 8)).toBe(-1);
    expect(r.task.errno).toBe(EINVAL);
    expect(r.sys.pwrite(r.task, r.dev, r.u32(512), 4, base)).toBe(-1);

    // the guest handles the fault, then answers through the response ring and its head
    r.pt.map(MISSING, FAULT_GPA, 0x1000);
    const resp = r.putBytes(encode(iommu_page_response, { argsz: 24, version: 1, flags: IOMMU_PAGE_RESP_PASID_VALID, pasid: PASID, grpid: prm.grpid as number, code: IOMMU_PAGE_RESP_SUCCESS }));
    expect(r.sys.pwrite(r.task, r.dev, resp, 24, rbase + 4096)).toBe(24);
    const headWrite = r.m.sim.step(r.task.thread, '2', 'response head', () => expect(r.sys.pwrite(r.task, r.dev, r.u32(1), 4, rbase)).toBe(4));
    expect([headWrite.copiesFromUser, headWrite.bytesFromUser]).toEqual([1, 4]);
    expect(dma.status).toBe('pending'); // the workqueue has not run yet
    r.m.sim.sched.run();
    expect(dma.status).toBe('ok');
    expect([...r.readGuest(FAULT_GPA + 0x10, 2)]).toEqual([0xca, 0xfe]);
    expect(iommu_pending_faults(r.devs[0]!.dev)).toBe(0);
    expect(r.m.iopf.pendingGroups(r.devs[0]!.dev)).toEqual([]);
    // the kernel consumed the response: its tail caught up with the head
    const rh = r.putBytes(new Uint8Array(20));
    expect(r.sys.pread(r.task, r.dev, rh, 20, rbase)).toBe(20);
    expect([...new Uint32Array(r.readBytes(rh, 20).buffer)]).toEqual([1, 24, 512, 4096, 1]);

    for (const fd of [efd, r.dev, r.grp, r.cont, r.ioasid]) expect(r.sys.close(r.task, fd)).toBe(0);
    r.m.sim.leaks.assertClean();
  });

  it('a device without a nesting domain gets no fault regions', () => {
    const r = tunnelRig({ pri: true, ramSize: 64 << 10 });
    const cont = r.sys.open(r.task, '/dev/vfio/vfio');
    const grp = r.sys.open(r.task, '/dev/vfio/3');
    expect(r.ioctl(grp, 0x3b00 + 104, r.int(cont))).toBe(0); // VFIO_GROUP_SET_CONTAINER
    expect(r.ioctl(cont, 0x3b00 + 102, 3)).toBe(0); // VFIO_SET_IOMMU(TYPE1v2)
    const dev = r.ioctl(grp, VFIO_GROUP_GET_DEVICE_FD, r.putBytes(new TextEncoder().encode(`${r.devs[0]!.dev.bdf}\0`)));
    expect(r.ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, r.put(vfio_region_info, { argsz: 32, index: 9 }))).toBe(-1);
    expect(r.task.errno).toBe(EINVAL);
    for (const fd of [dev, grp, cont]) r.sys.close(r.task, fd);
    r.m.sim.leaks.assertClean();
  });
});
