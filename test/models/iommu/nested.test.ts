import { describe, expect, it } from 'vitest';
import { FR } from '../../../models/hw/vtd/faults.ts';
import { PGTT } from '../../../models/hw/vtd/tables.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { domain_id_iommu, type DmarDomain } from '../../../models/iommu/intel/iommu.ts';
import { GUEST_VA, allocNested, handle, nestedRig, recordSubmissions } from '../../helpers/nested.ts';

const PASID = 5;
const bytes = (...b: number[]) => Uint8Array.from(b);

describe('nested translation through the shared IOMMU layer', () => {
  it('attaching a nested domain to a PASID writes the entry intel_pasid_setup_nested writes, and DMA lands in the guest page', () => {
    const r = nestedRig();
    const s1 = allocNested(r, r.pt) as DmarDomain;
    expect(r.asTask(() => r.m.core.iommu_attach_device_pasid(s1, r.d.dev, PASID, handle()))).toBe(0);
    const e = pasidEntryOf(r.m.iommu, r.d.info, PASID)!;
    expect(e).toEqual({
      present: true,
      fpd: false,
      pgtt: PGTT.NESTED,
      flptr: r.pt.root, // a guest-physical address
      flpm: 0, // 4-level guest table (addr_width 48)
      sre: false,
      wpe: false,
      eafe: false,
      slptptr: r.s2.pgd,
      aw: r.s2.agaw,
      did: domain_id_iommu(s1, r.m.iommu),
      pwsnp: r.m.iommu.caps.smpwc,
      pgsnp: false,
      ssade: false,
      slee: false,
      ere: false,
    });
    const w = r.d.pci.dmaWrite(PASID, GUEST_VA + 0x1000, bytes(0xde, 0xad, 0xbe, 0xef));
    expect(w.status).toBe('ok');
    expect([...r.ram.read(0x10_1000, 4)]).toEqual([0xde, 0xad, 0xbe, 0xef]);
  });

  it('replacing the nested domain is hitless: a DMA at every step of the replace translates', () => {
    const r = nestedRig();
    const s1 = allocNested(r, r.pt);
    expect(r.asTask(() => r.m.core.iommu_attach_device_pasid(s1, r.d.dev, PASID, handle()))).toBe(0);
    const pt2 = r.ram.firstStage(4);
    pt2.map(GUEST_VA, 0x20_0000, 0x8000);
    const s1b = allocNested(r, pt2);
    const seen: string[] = [];
    const stop = r.m.vtd.mmio.observe(0x88, (_o, _v, phase) => {
      if (phase === 'before') seen.push(r.d.pci.dmaWrite(PASID, GUEST_VA, bytes(1)).status);
    });
    expect(r.asTask(() => r.m.core.iommu_replace_device_pasid(s1b, r.d.dev, PASID, handle()))).toBe(0);
    stop();
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s === 'ok')).toBe(true);
    expect(r.d.pci.dmaWrite(PASID, GUEST_VA + 0x10, bytes(7, 7)).status).toBe('ok');
    expect([...r.ram.read(0x20_0010, 2)]).toEqual([7, 7]);
    // the old domain no longer holds the attachment
    expect((s1 as DmarDomain).dev_pasids).toEqual([]);
  });

  it('detaching tears the entry down with the spec-ordered flushes and leaves DMA faulting', () => {
    const r = nestedRig({ ats: true });
    const s1 = allocNested(r, r.pt);
    expect(r.asTask(() => r.m.core.iommu_attach_device_pasid(s1, r.d.dev, PASID, handle()))).toBe(0);
    expect(r.d.pci.dmaWrite(PASID, GUEST_VA, bytes(1)).status).toBe('ok');
    const rec = recordSubmissions(r.m);
    r.m.core.iommu_detach_device_pasid(s1, r.d.dev, PASID);
    rec.stop();
    // PASID cache, then domain-selective IOTLB (nested), then the PASID device-TLB: one wait each
    expect(rec.batches).toEqual([
      [7, 5],
      [2, 5],
      [8, 5],
    ]);
    expect(pasidEntryOf(r.m.iommu, r.d.info, PASID)!.present).toBe(false);
    const after = r.d.pci.dmaWrite(PASID, GUEST_VA, bytes(1));
    expect(after.status).toBe('fault');
    expect(after.reason).toBe(FR.PASID_ENTRY_P);
  });

  it('issues no invalidation for a new entry with CM=0, and a PASID-cache plus P_IOTLB flush with CM=1', () => {
    for (const cm of [false, true]) {
      const r = nestedRig({ caps: { cachingMode: cm } });
      const s1 = allocNested(r, r.pt);
      const rec = recordSubmissions(r.m);
      expect(r.asTask(() => r.m.core.iommu_attach_device_pasid(s1, r.d.dev, PASID, handle()))).toBe(0);
      rec.stop();
      expect(rec.batches, `CM=${cm}`).toEqual(cm ? [[7, 5], [6, 5]] : []);
    }
  });
});
