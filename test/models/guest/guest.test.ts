import { describe, expect, it } from 'vitest';
import { Rng } from '../../../sim/rng.ts';
import { vIommuCaps } from '../../../models/hw/vtd/caps.ts';
import { FR } from '../../../models/hw/vtd/faults.ts';
import { REG } from '../../../models/hw/vtd/regs.ts';
import { PGTT } from '../../../models/hw/vtd/tables.ts';
import { Vtd } from '../../../models/hw/vtd/vtd.ts';
import { ACCESS } from '../../../models/hw/vtd/walk.ts';
import { IS_ERR } from '../../../models/kernel/errno.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../../models/iommu/types.ts';
import { GuestKernel } from '../../../models/guest/kernel.ts';
import { GuestMemory } from '../../../models/guest/memory.ts';
import { GuestPageAllocator } from '../../../models/guest/page_alloc.ts';
import { FLUSH_ALL_END } from '../../../models/guest/mm.ts';
import { FLPT_DEFAULT_DID } from '../../../models/guest/intel/pasid.ts';
import { calculate_psi_aligned_address } from '../../../models/guest/intel/cache.ts';
import { bootHost } from '../../helpers/host.ts';
import { ALLOC_PASID, NEST_PARENT, allocNested, handle } from '../../helpers/nested.ts';

const VA = 0x7f00_0000_0000;
const SID = 0x0010;

/** Guest RAM mmapped in a VMM task; a guest booted on a bare vIOMMU model (nobody traps it). */
function bareGuest(o: { ats?: boolean; pri?: boolean; seed?: number } = {}) {
  const host = bootHost({ seed: o.seed ?? 1 });
  const hva = host.task.mm.mmap(32 << 20, 'guest0.ram');
  if (IS_ERR(hva)) throw new Error('mmap');
  const vma = host.task.mm.findVma(hva)!;
  const ram = new GuestMemory(host.m.mem, vma.pfns);
  const viommu = new Vtd(ram, { name: 'viommu', caps: vIommuCaps() });
  const submissions: number[][] = [];
  let tail = 0;
  viommu.mmio.observe(REG.IQT, (_o, v, phase) => {
    if (phase !== 'before') return;
    const types: number[] = [];
    for (let i = tail; i !== v >>> 5; i = (i + 1) % 256) types.push(ram.readU32(viommu.qi.base + i * 32) & 0xf);
    if (types.length) submissions.push(types);
    tail = v >>> 5;
  });
  const guest = new GuestKernel({ sim: host.m.sim, mem: ram, viommu });
  expect(guest.addDevice({ name: 'dsa0', sid: SID, pasidBits: 20, ats: o.ats ?? false, pri: o.pri ?? false })).toBe(0);
  return { ...host, hva, vma, ram, viommu, guest, submissions };
}

describe('guest RAM', () => {
  it('is a GPA view of the VMM mapping: bytes land in the scattered host frames', () => {
    const g = bareGuest();
    g.ram.writeU32(0x5000, 0xdeadbeef);
    expect(g.m.mem.readU32(g.vma.pfns[5]! * 4096)).toBe(0xdeadbeef);
    expect(g.ram.hpa(0x5004)).toBe(g.vma.pfns[5]! * 4096 + 4);
    expect(g.ram.owner(0x5004)).toEqual({ region: 'guest0.ram', offset: 0x5004 });
    const contiguous = [...g.vma.pfns].every((p, i, a) => i === 0 || p === a[i - 1]! + 1);
    expect(contiguous).toBe(false);
    expect(() => g.ram.readU32(32 << 20)).toThrow(/outside guest RAM/);
  });

  it('counts vIOMMU structure fetches on the guest view, not on host walks', () => {
    const g = bareGuest();
    const host0 = g.m.mem.walkReads;
    const out = new Int32Array(8);
    g.ram.fetchEntry(0x2000, 8, out);
    expect(g.ram.walkReads).toBe(1);
    expect(g.m.mem.walkReads).toBe(host0);
  });

  it('hands out frames by the seed, above the low 1 MiB, contiguous when asked', () => {
    const frames = Float64Array.from({ length: 1024 }, (_, i) => 0x1000 + i);
    const host = bootHost();
    const mem = new GuestMemory(host.m.mem, frames);
    const a = new GuestPageAllocator(mem, new Rng(7));
    const b = new GuestPageAllocator(mem, new Rng(7));
    const c = new GuestPageAllocator(mem, new Rng(8));
    const seq = (x: GuestPageAllocator) => Array.from({ length: 8 }, () => x.allocPage());
    const sa = seq(a);
    expect(sa).toEqual(seq(b));
    expect(sa).not.toEqual(seq(c));
    expect(sa.every((gpa) => gpa >= 0x100000)).toBe(true);
    const run = a.allocContiguous(32);
    expect(run % 4096).toBe(0);
    expect(run).toBeGreaterThanOrEqual(0x100000);
    a.freePage(sa[0]!);
    expect(() => a.freePage(sa[0]!)).toThrow(/not allocated/);
  });
});

describe('guest processes', () => {
  it('maps, translates, unmaps, and notifies secondary TLBs with the flushed range', () => {
    const g = bareGuest();
    const p = g.guest.createProcess('p1');
    const gpas = p.map(VA, 4) as number[];
    expect(gpas).toHaveLength(4);
    expect(p.translate(VA + 0x2010)).toBe(gpas[2]! + 0x10);
    const seen: [number, number][] = [];
    p.notifiers.add((s, e) => seen.push([s, e]));
    expect(p.unmap(VA + 0x1000, 2)).toBe(0);
    expect(p.translate(VA + 0x1000)).toBe(-1);
    expect(p.translate(VA)).toBe(gpas[0]);
    expect(seen).toEqual([[VA + 0x1000, VA + 0x3000]]);
    expect(p.vmas).toEqual([
      { start: VA, end: VA + 0x1000, write: true },
      { start: VA + 0x3000, end: VA + 0x4000, write: true },
    ]);
    p.map(VA + 0x100000, 40);
    p.unmap(VA + 0x100000, 40);
    expect(seen[1]).toEqual([0, FLUSH_ALL_END]); // above tlb_single_page_flush_ceiling
    expect(p.unmap(VA + 0x200000, 1)).toBe(0);
    expect(seen).toHaveLength(2); // nothing was mapped there: no flush
  });

  it('faults pages into a reserved VMA and refuses accesses outside it', () => {
    const g = bareGuest();
    const p = g.guest.createProcess('p1');
    expect(p.reserve(VA, 2, { write: false })).toBe(0);
    expect(p.handleMmFault(VA + 0x1008, false)).toBe(0);
    expect(p.translate(VA + 0x1000)).toBeGreaterThan(0);
    expect(p.handleMmFault(VA, true)).toBe(-14);
    expect(p.handleMmFault(VA + 0x5000, false)).toBe(-14);
    expect(p.reserve(VA + 0x1000, 1)).toBe(-22); // overlaps
  });

  it('computes the PSI Linux sends for a range (calculate_psi_aligned_address)', () => {
    expect(calculate_psi_aligned_address(0x1000, 0x3fff)).toEqual({ addr: 0, pages: 4, mask: 2 });
    expect(calculate_psi_aligned_address(0x4000, 0x7fff)).toEqual({ addr: 0x4000, pages: 4, mask: 2 });
    expect(calculate_psi_aligned_address(0x3000, 0x4fff)).toEqual({ addr: 0, pages: 8, mask: 3 });
  });
});

describe('the guest intel-iommu driver on a bare vIOMMU', () => {
  it('boots in scalable mode with QI and the PRQ, and probes the device into a context entry', () => {
    const g = bareGuest({ ats: true, pri: true });
    expect(g.viommu.translationEnabled).toBe(true);
    expect(g.viommu.scalableMode).toBe(true);
    expect(g.viommu.qi.enabled).toBe(true);
    expect(g.viommu.prq.base).toBe(g.guest.prq.base);
    expect(g.viommu.contextFlagsFor(SID)).toBe(0b1110); // PASIDE, PRE, DTE; FPD clear
    // boot: CC, PC, IOTLB global; probe (CM = 1): CC device, PC global, IOTLB global, device-TLB
    expect(g.submissions).toEqual([[1, 5], [7, 5], [2, 5], [1, 5], [7, 5], [2, 5], [3, 5]]);
  });

  it('binds a process with the entry Linux writes for SVA, and the model walks it to the guest page', () => {
    const g = bareGuest();
    const p = g.guest.createProcess('p1');
    const gpas = p.map(VA, 2) as number[];
    g.submissions.length = 0;
    expect(g.guest.bind('dsa0', 5, p)).toBe(0);
    expect(g.submissions).toEqual([[7, 5], [6, 5]]); // pasid_flush_caches under caching mode
    expect(g.guest.pasidEntry('dsa0', 5)).toMatchObject({
      present: true, pgtt: PGTT.FS, flptr: p.pgd, flpm: 0, did: FLPT_DEFAULT_DID, aw: g.guest.iommu.agaw, pwsnp: true, sre: false, wpe: false,
    });
    // the vIOMMU model itself translates through the guest's tables: GVA → GPA
    expect(g.viommu.translate(SID, 5, VA + 0x1234, ACCESS.WRITE)).toBe(0);
    expect(g.viommu.result.hpa).toBe(gpas[1]! + 0x234);
    expect(g.guest.bind('dsa0', 5, p)).toBe(-16);
  });

  it('tears down with the spec order and leaves the PASID faulting in the model', () => {
    const g = bareGuest({ ats: true, pri: true });
    const p = g.guest.createProcess('p1');
    p.map(VA, 1);
    g.guest.bind('dsa0', 5, p);
    expect(g.viommu.translate(SID, 5, VA, ACCESS.READ)).toBe(0);
    g.submissions.length = 0;
    expect(g.guest.unbind('dsa0', 5)).toBe(0);
    // PASID cache, P_IOTLB, PASID device-TLB, then the PRQ drain (fenced wait, P_IOTLB, device-TLB, PD wait)
    expect(g.submissions).toEqual([[7, 5], [6, 5], [8, 5], [5, 6, 8, 5]]);
    expect(g.viommu.translate(SID, 5, VA, ACCESS.READ)).toBe(FR.PASID_ENTRY_P);
    expect(g.guest.unbind('dsa0', 5)).toBe(-22);
  });

  it('flushes after a PTE change with one P_IOTLB and one device-TLB descriptor behind one wait', () => {
    const g = bareGuest({ ats: true });
    const p = g.guest.createProcess('p1');
    p.map(VA, 8);
    g.guest.bind('dsa0', 5, p);
    g.submissions.length = 0;
    p.unmap(VA, 4);
    expect(g.submissions).toEqual([[6, 8, 5]]);
    g.guest.flushMode = 'per-page';
    g.submissions.length = 0;
    p.unmap(VA + 0x4000, 4);
    expect(g.submissions).toEqual([[6, 8, 6, 8, 6, 8, 6, 8, 5]]);
  });

  it('rebinding replaces the entry in place (present → present)', () => {
    const g = bareGuest();
    const p1 = g.guest.createProcess('p1');
    const p2 = g.guest.createProcess('p2');
    p1.map(VA, 1);
    const gpas = p2.map(VA, 1) as number[];
    g.guest.bind('dsa0', 5, p1);
    g.submissions.length = 0;
    expect(g.guest.rebind('dsa0', 5, p2)).toBe(0);
    expect(g.submissions).toEqual([[7, 5], [6, 5]]);
    expect(g.guest.pasidEntry('dsa0', 5)!.flptr).toBe(p2.pgd);
    expect(g.viommu.translate(SID, 5, VA, ACCESS.READ)).toBe(0);
    expect(g.viommu.result.hpa).toBe(gpas[0]);
    // p1's domain is released: unmapping in p1 flushes nothing
    g.submissions.length = 0;
    p1.unmap(VA, 1);
    expect(g.submissions).toEqual([]);
  });
});

describe('the guest table under the host nested translation', () => {
  it('a device DMA through a nested domain on the guest process table lands in the guest page', () => {
    const host = bootHost({ frames: 1 << 16 });
    const { m } = host;
    const d = m.addPciDevice('dsa0', 0x0300, { pasidBits: 20 });
    const group = m.core.iommu_group_get(d.dev)!;
    expect(m.core.iommu_device_claim_dma_owner(d.dev, 'test-owner')).toBe(0);
    const s2 = m.iommu.ops.domain_alloc_paging_flags(d.dev, NEST_PARENT | ALLOC_PASID, null);
    if (IS_ERR(s2)) throw new Error('s2');
    expect(m.core.iommu_attach_group(s2, group)).toBe(0);
    const hva = host.task.mm.mmap(16 << 20, 'guest0.ram');
    if (IS_ERR(hva)) throw new Error('mmap');
    const vma = host.task.mm.findVma(hva)!;
    vma.pfns.forEach((pfn, i) => expect(m.core.iommu_map(s2, i * 4096, pfn * 4096, 4096, IOMMU_READ | IOMMU_WRITE)).toBe(0));
    const ram = new GuestMemory(m.mem, vma.pfns);
    const guest = new GuestKernel({ sim: m.sim, mem: ram, viommu: new Vtd(ram, { caps: vIommuCaps() }) });
    const p = guest.createProcess('p1');
    const gpas = p.map(VA, 2) as number[];
    const r = { ...host, d, group, s2 };
    const s1 = allocNested(r as never, { root: p.pgd } as never);
    expect(host.asTask(() => m.core.iommu_attach_device_pasid(s1, d.dev, 5, handle()))).toBe(0);
    expect(d.pci.dmaWrite(5, VA + 0x1008, Uint8Array.of(1, 2, 3)).status).toBe('ok');
    expect([...ram.readBytes(gpas[1]! + 8, 3)]).toEqual([1, 2, 3]);
  });
});
