import { describe, expect, it } from 'vitest';
import { NO_PASID, PciDevice } from '../../../models/hw/pcie/device.ts';
import {
  DEVTLB_ALL_ORDER,
  FSTS,
  QI_TYPE,
  REG,
  decodeInvDesc,
  InvDesc,
  encodeDevPiotlbInv,
  encodeDevTlbInv,
  encodePiotlbInv,
} from '../../../models/hw/vtd/index.ts';
import { P } from '../../../sim/primitives.ts';
import { primitiveCount } from '../../../sim/recorder.ts';
import { Sim } from '../../../sim/sim.ts';
import { DATA, DEV_RID, atsRig } from './ats-rig.ts';
import { QI_DONE } from './qi-rig.ts';

const VA = 0x1000_0000;
const one = Uint8Array.of(7);

/** PASIDs 1 and 2 and RID_PASID (0, used by requests without PASID) with pages VA..VA+3 mapped. */
function cached() {
  const r = atsRig();
  for (const pasid of [0, 1, 2]) r.map(pasid, VA, pasid * 0x10_000, 4);
  for (const pasid of [NO_PASID, 1, 2]) for (let p = 0; p < 4; p++) expect(r.dev.dmaRead(pasid, VA + p * 0x1000, 1).status).toBe('ok');
  expect(r.dev.devTlb!.size).toBe(12);
  return r;
}

/** Which of the 4 pages of `pasid` are still in the device-TLB. */
function present(dev: PciDevice, pasid: number): string {
  let s = '';
  for (let p = 0; p < 4; p++) s += dev.devTlb!.table.find((VA >>> 12) + p, 0, pasid === NO_PASID ? 0x100000 : pasid, 0) >= 0 ? 'h' : '-';
  return s;
}

describe('ATS: the device-TLB', () => {
  it('caches translations when the context DTE is set and uses them without the IOMMU; stale until invalidated', () => {
    const { dev, v, map, tables, qi, mem } = atsRig();
    map(1, VA, 0x1000);
    expect(dev.dmaWrite(1, VA, one).status).toBe('ok');
    expect(dev.atsTranslations).toBe(1);
    const refs = mem.walkRefs;
    expect(dev.dmaWrite(1, VA + 1, one).status).toBe('ok');
    expect(mem.walkRefs).toBe(refs); // the device-TLB hit never reached the IOMMU
    expect(dev.devTlb!.hits).toBe(1);
    // the OS moves the page and flushes the IOTLB only: the device keeps using the old frame
    tables.get(1)!.remap(VA, DATA + 0x9000, 4096, { write: true });
    qi.submit([encodePiotlbInv({ g: 2, did: 11, pasid: 1 })]);
    dev.dmaWrite(1, VA + 2, one);
    expect(mem.readU8(DATA + 0x1002)).toBe(7);
    expect(mem.readU8(DATA + 0x9002)).toBe(0);
    // the PASID device-TLB invalidation (type 8) makes it fetch the new translation
    expect(qi.submit([encodeDevPiotlbInv({ sid: DEV_RID, pasid: 1, addr: VA })]).status).toBe(QI_DONE);
    dev.dmaWrite(1, VA + 3, one);
    expect(mem.readU8(DATA + 0x9003)).toBe(7);
    expect(v.qi.devTlbDescriptors).toBe(1);
  });

  it('a read caches read permission only: a later write asks the IOMMU again', () => {
    const { dev, map } = atsRig();
    map(1, VA, 0);
    dev.dmaRead(1, VA, 1);
    dev.dmaWrite(1, VA, one);
    expect(dev.atsTranslations).toBe(2);
    dev.dmaWrite(1, VA, one);
    expect(dev.atsTranslations).toBe(2);
  });

  it('with DTE clear the device sends untranslated requests and caches nothing', () => {
    const { dev, map } = atsRig({ dte: false, pre: false });
    map(1, VA, 0);
    dev.dmaRead(1, VA, 1);
    dev.dmaRead(1, VA, 1);
    expect(dev.devTlb!.size).toBe(0);
    expect(dev.untranslatedTranslations).toBe(2);
  });

  const cases: [string, Int32Array, Record<string, string>][] = [
    ['type 8, one page', encodeDevPiotlbInv({ sid: DEV_RID, pasid: 1, addr: VA + 0x1000 }), { '1': 'h-hh' }],
    ['type 8, S=1 two pages (order 1)', encodeDevPiotlbInv({ sid: DEV_RID, pasid: 2, addr: VA + 0x2000, order: 1 }), { '2': 'hh--' }],
    ['type 8, S=1 four pages (order 2)', encodeDevPiotlbInv({ sid: DEV_RID, pasid: 1, addr: VA, order: 2 }), { '1': '----' }],
    ['type 8, all of a PASID (ADDR 0x7FFFFFFFFFFFF, S=1)', encodeDevPiotlbInv({ sid: DEV_RID, pasid: 2, order: DEVTLB_ALL_ORDER }), { '2': '----' }],
    ['type 8 with G=1: every PASID (requests without PASID too)', encodeDevPiotlbInv({ sid: DEV_RID, pasid: 2, addr: VA + 0x3000, globalPasids: true }), { '-1': 'hhh-', '1': 'hhh-', '2': 'hhh-' }],
    ['type 3, one page: requests without PASID only', encodeDevTlbInv({ sid: DEV_RID, addr: VA + 0x3000 }), { '-1': 'hhh-' }],
    ['type 3, everything (global device-TLB flush)', encodeDevTlbInv({ sid: DEV_RID, order: DEVTLB_ALL_ORDER }), { '-1': '----' }],
    ['type 8 for another device', encodeDevPiotlbInv({ sid: DEV_RID + 1, pasid: 1, order: DEVTLB_ALL_ORDER }), {}],
  ];
  for (const [name, desc, changed] of cases) {
    it(`invalidation: ${name}`, () => {
      const { dev, qi } = cached();
      expect(qi.submit([desc]).status).toBe(QI_DONE);
      const want = { '-1': 'hhhh', '1': 'hhhh', '2': 'hhhh', ...changed };
      expect({ '-1': present(dev, NO_PASID), '1': present(dev, 1), '2': present(dev, 2) }).toEqual(want);
    });
  }

  it('decodes the address encodings linux writes (qi_desc_dev_iotlb / qi_desc_dev_iotlb_pasid)', () => {
    const d = new InvDesc();
    expect(decodeInvDesc(encodeDevPiotlbInv({ sid: 1, pasid: 3, addr: 0x40_0000, order: 4, pfsid: 0x123, qdep: 31 }), 0, true, 18, d)).toBe(0);
    expect([d.type, d.sid, d.pasid, d.addr, d.pages]).toEqual([QI_TYPE.DEV_PIOTLB, 1, 3, 0x40_0000, 16]);
    expect(decodeInvDesc(encodeDevTlbInv({ sid: 0x300, addr: 0x12_3000, order: 0, pfsid: 0x2f1 }), 0, true, 18, d)).toBe(0);
    expect([d.type, d.sid, d.addr, d.pages]).toEqual([QI_TYPE.DEV_TLB, 0x300, 0x12_3000, 1]);
    const all = encodeDevPiotlbInv({ sid: 1, pasid: 3, order: DEVTLB_ALL_ORDER });
    expect([all[2]! >>> 0, all[3]! >>> 0]).toEqual([0xfffff800, 0x7fffffff]); // ADDR 0x7FFFFFFFFFFFF, S
    decodeInvDesc(all, 0, true, 18, d);
    expect(d.pages).toBe(Infinity);
  });

  it('an ATS invalidation time-out (ITE): IQER.ITESID, the batch dropped, recovery after clearing ITE', () => {
    const { v, dev, qi } = cached();
    const faults: string[] = [];
    v.onInterrupt('fault', (k) => faults.push(k));
    v.mmio.write32(REG.FECTL, 0);
    dev.devTlbTimeout = true;
    const r = qi.submit([encodeDevPiotlbInv({ sid: DEV_RID, pasid: 1, order: DEVTLB_ALL_ORDER })]);
    expect(r.status).toBe(1); // the wait never completed
    expect(v.mmio.read32(REG.FSTS) & FSTS.ITE).toBe(FSTS.ITE);
    expect(Number((v.mmio.read64(REG.IQER) >> 32n) & 0xffffn)).toBe(DEV_RID);
    expect(v.mmio.read32(REG.IQH)).toBe(v.mmio.read32(REG.IQT));
    expect(faults).toEqual(['fault']);
    expect(present(dev, 1)).toBe('hhhh');
    // linux: clear ITE, abort the waiters, resubmit
    dev.devTlbTimeout = false;
    v.mmio.write32(REG.FSTS, FSTS.ITE);
    expect(qi.submit([encodeDevPiotlbInv({ sid: DEV_RID, pasid: 1, order: DEVTLB_ALL_ORDER })]).status).toBe(QI_DONE);
    expect(present(dev, 1)).toBe('----');
  });
});

describe('the DMA engine', () => {
  it('moves bytes across pages, logs effects per page, and keeps PASIDs apart (a vDPA device, PASID per virtqueue group)', () => {
    const { dev, map, mem, v } = atsRig();
    map(1, VA, 0, 2);
    map(2, VA, 0x8000, 1);
    const data = Uint8Array.from({ length: 6000 }, (_, i) => i & 0xff);
    expect(dev.dmaWrite(1, VA + 100, data).status).toBe('ok');
    expect(mem.readBytes(DATA + 100, 6000)).toEqual(data);
    expect(v.effects.effects.map((e) => [e.pasid, e.iova, e.length])).toEqual([
      [1, `0x${(VA + 100).toString(16)}`, 3996],
      [1, `0x${(VA + 0x1000).toString(16)}`, 2004],
    ]);
    const rd = dev.dmaRead(2, VA, 4);
    expect(rd.status).toBe('ok');
    expect(rd.buf).toEqual(new Uint8Array(4));
    expect(() => dev.dmaRead(1 << 20, VA, 4)).toThrow(RangeError);
    const narrow = new PciDevice({ rid: 0x0400, pasidBits: 0 }, v);
    expect(() => narrow.dmaRead(1, VA, 4)).toThrow(/PASID capability/);
    expect(() => new PciDevice({ rid: 0x0401, pri: true }, v)).toThrow(/PRI needs ATS/);
    expect(() => new PciDevice({ rid: DEV_RID }, v)).toThrow(/already attached/);
  });

  it('charges a dmaMemRef per memory reference the IOMMU made, in a hw span', () => {
    const { dev, map, v, mem } = atsRig();
    map(1, VA, 0);
    const sim = new Sim();
    v.sim = sim;
    const t = sim.sched.spawn('dev');
    const refs = mem.walkRefs;
    const rec = sim.step(t, '1', 'dma', () => {
      dev.dmaRead(1, VA, 4);
      dev.dmaRead(1, VA, 4); // device-TLB hit: no references
    });
    const n = mem.walkRefs - refs;
    expect(n).toBeGreaterThanOrEqual(4);
    expect(primitiveCount(rec, P.dmaMemRef)).toBe(n);
    expect(rec.prims.get('hw')![P.dmaMemRef * 2]).toBe(n);
    expect(rec.counters.get('walkRefs')).toBe(n);
    expect(rec.trace.map((s) => s.fn.name)).toEqual(['pcie_dma', 'pcie_dma']);
  });
});
