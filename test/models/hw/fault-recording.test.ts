import { describe, expect, it } from 'vitest';
import { PciDevice, NO_PASID } from '../../../models/hw/pcie/device.ts';
import {
  CTL_IM,
  CTL_IP,
  FR,
  FRCD_F,
  FSTS,
  PAGE_4K,
  PGTT,
  REG,
  computeDigest,
  contextEntryAddressFor,
  readContextEntryAt,
  writeContextEntryAt,
} from '../../../models/hw/vtd/index.ts';
import { GUEST_RAM_HPA, Rig } from './rig.ts';

const SID = 0x0210;
const VA = 0x50_0000;
const data = Uint8Array.of(1, 2, 3, 4);

/** A device without ATS (untranslated requests) and tables for each kind of fault. */
function faultRig(nfr = 8) {
  const rig = new Rig({ caps: { nfr } });
  const v = rig.vtd;
  const dir = rig.attach(SID);
  const fs = rig.hostFirstStage(4);
  fs.map(VA, GUEST_RAM_HPA, PAGE_4K, PAGE_4K, { write: false }); // read-only
  rig.setPasid(dir, 1, { pgtt: PGTT.FS, did: 2, flptr: fs.root });
  rig.setPasid(dir, 2, { pgtt: PGTT.FS, did: 2, flptr: fs.root, fpd: true });
  rig.setPasid(dir, 3, { pgtt: 6, did: 2 }); // reserved PGTT
  const dev = new PciDevice({ rid: SID }, v);
  return { rig, v, dir, fs, dev };
}

describe('primary fault recording', () => {
  const kinds: [string, number, number, number, boolean][] = [
    // name, pasid, va, reason, write
    ['first-stage entry not present', 1, VA + 0x1000, FR.FS_ENTRY_P, false],
    ['write to a read-only page', 1, VA, FR.SM_WRITE, true],
    ['PASID entry not present', 9, VA, FR.PASID_ENTRY_P, false],
    ['PASID directory entry not present', 64 * 5, VA, FR.PASID_DIR_ENTRY_P, false],
    ['invalid PASID entry (reserved PGTT)', 3, VA, FR.PASID_ENTRY_INV, false],
    ['non-canonical input address', 1, 0x8000_0000_0000, FR.FS_NON_CANONICAL, false],
    ['output in the interrupt window', 1, 0x60_0000, FR.SM_INTERRUPT_ADDR, true],
  ];
  for (const [name, pasid, va, reason, write] of kinds) {
    it(`${name}: FRCD 0 holds reason 0x${reason.toString(16)}, SID, PASID, page, type; FSTS.PPF/FRI; the digest`, () => {
      const { v, dev, fs } = faultRig();
      fs.map(0x60_0000, 0xfee0_0000, PAGE_4K, PAGE_4K, { write: true });
      const r = write ? dev.dmaWrite(pasid, va + 0x10, data) : dev.dmaRead(pasid, va + 0x10, 4);
      expect(r.status).toBe('fault');
      expect(r.reason).toBe(reason);
      expect(v.frcd.read(0)).toEqual({ pending: true, reason, sid: SID, pasid, addr: va, write });
      const fsts = v.mmio.read32(REG.FSTS);
      expect(fsts & FSTS.PPF).toBe(FSTS.PPF);
      expect((fsts >>> 8) & 0xff).toBe(0);
      // software reads FRCD through MMIO as linux dmar_fault does
      const off = v.caps.fro * 16;
      expect(v.mmio.read32(off + 12) & 0xff).toBe(reason);
      expect(v.mmio.read32(off + 8) & 0xffff).toBe(SID);
      expect(v.faultRecords).toEqual([{ reason, sid: SID, pasid, addr: `0x${va.toString(16)}`, write }]);
      const doc = computeDigest(v).doc as { faults: unknown[] };
      expect(doc.faults).toHaveLength(1);
    });
  }

  it('a request without PASID records PP = 0', () => {
    const { v, rig } = faultRig();
    const other = new PciDevice({ rid: 0x0500 }, v); // no context entry for bus 5
    expect(other.dmaRead(NO_PASID, 0x1000, 4).reason).toBe(FR.ROOT_ENTRY_P);
    expect(v.frcd.read(0)).toMatchObject({ reason: FR.ROOT_ENTRY_P, sid: 0x0500, pasid: -1 });
    void rig;
  });

  it('FPD in the PASID entry or the context entry suppresses qualified faults', () => {
    const { v, dev, rig } = faultRig();
    expect(dev.dmaRead(2, VA + 0x1000, 4).reason).toBe(FR.FS_ENTRY_P);
    expect(v.frcd.suppressed).toBe(1);
    expect(v.frcd.read(0).pending).toBe(false);
    expect(v.mmio.read32(REG.FSTS)).toBe(0);
    expect(v.faultRecords).toEqual([]);
    // context FPD
    const ce = contextEntryAddressFor(rig.mem, rig.root, SID);
    writeContextEntryAt(rig.mem, ce, { ...readContextEntryAt(rig.mem, ce), fpd: true });
    v.invalidateContextCache(1, 0, 0, 0);
    v.invalidatePasidCache(3, 0, 0);
    expect(dev.dmaRead(9, VA, 4).reason).toBe(FR.PASID_ENTRY_P);
    expect(v.frcd.suppressed).toBe(2);
    expect(v.faultRecords).toEqual([]);
  });

  it('overflow: with every record pending the next fault sets PFO and is not recorded; clearing resumes', () => {
    const { v, dev } = faultRig(2);
    for (let i = 0; i < 3; i++) expect(dev.dmaRead(1, VA + (i + 1) * 0x1000, 4).status).toBe('fault');
    expect(v.frcd.recorded).toBe(2);
    expect(v.frcd.dropped).toBe(1);
    expect(v.mmio.read32(REG.FSTS) & (FSTS.PFO | FSTS.PPF)).toBe(FSTS.PFO | FSTS.PPF);
    expect(v.frcd.read(1).addr).toBe(VA + 0x2000);
    expect(v.faultRecords).toHaveLength(3); // the digest keeps every fault: overflow is timing
    // software clears record 0 (W1C on F) but not PFO: still no recording
    const off0 = v.caps.fro * 16;
    v.mmio.write32(off0 + 12, FRCD_F);
    expect(v.frcd.read(0).pending).toBe(false);
    dev.dmaRead(1, VA + 0x5000, 4);
    expect(v.frcd.dropped).toBe(2);
    // clear PFO: the next fault goes into record 0
    v.mmio.write32(REG.FSTS, FSTS.PFO);
    dev.dmaRead(1, VA + 0x6000, 4);
    expect(v.frcd.read(0)).toMatchObject({ pending: true, addr: VA + 0x6000 });
    // clearing every record clears PPF
    v.mmio.write32(off0 + 12, FRCD_F);
    v.mmio.write32(off0 + 16 + 12, FRCD_F);
    expect(v.mmio.read32(REG.FSTS) & FSTS.PPF).toBe(0);
    // software cannot write the record's other fields
    v.mmio.write32(off0 + 8, 0x1234);
    expect(v.mmio.read32(off0 + 8) & 0xffff).toBe(SID);
  });

  it('the fault event: masked → IP; unmasking delivers; no new event while PPF is pending', () => {
    const { v, dev } = faultRig();
    const got: string[] = [];
    v.onInterrupt('fault', (k) => got.push(k));
    expect(v.mmio.read32(REG.FECTL)).toBe(CTL_IM >>> 0);
    dev.dmaRead(1, VA + 0x1000, 4);
    expect(v.mmio.read32(REG.FECTL)).toBe((CTL_IM | CTL_IP) >>> 0);
    expect(got).toEqual([]);
    v.mmio.write32(REG.FECTL, 0);
    expect(got).toEqual(['fault']);
    dev.dmaRead(1, VA + 0x2000, 4);
    expect(got).toHaveLength(1); // PPF still set
    const off = v.caps.fro * 16;
    v.mmio.write32(off + 12, FRCD_F);
    v.mmio.write32(off + 16 + 12, FRCD_F);
    dev.dmaRead(1, VA + 0x3000, 4);
    expect(got).toHaveLength(2);
    expect((v.mmio.read32(REG.FSTS) >>> 8) & 0xff).toBe(2); // FRI: the record written
  });
});
