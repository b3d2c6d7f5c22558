import { describe, expect, it } from 'vitest';
import {
  DEFAULT_CAPS,
  GCMD,
  GSTS,
  PGTT,
  REG,
  RTADDR_SMT,
  Vtd,
  decodeCaps,
  decodeContextEntry,
  decodePasidDirEntry,
  decodePasidEntry,
  decodeRootEntry,
  domainCount,
  emptyPasidEntry,
  encodeCap,
  encodeContextEntry,
  encodeEcap,
  encodePasidDirEntry,
  encodePasidEntry,
  encodeRootEntry,
  vIommuCaps,
} from '../../../models/hw/vtd/index.ts';
import { PhysicalMemory } from '../../../models/hw/memory.ts';

const bitOf = (w: ArrayLike<number>, n: number): number => (w[n >> 5]! >>> (n & 31)) & 1;

describe('CAP / ECAP', () => {
  it('puts the bits where linux iommu.h decodes them', () => {
    const cap = encodeCap(DEFAULT_CAPS);
    const ecap = encodeEcap(DEFAULT_CAPS);
    const c = [cap.lo, cap.hi];
    const e = [ecap.lo, ecap.hi];
    expect(bitOf(c, 7)).toBe(0); // CM
    expect((cap.lo >>> 8) & 0x1f).toBe(0b01100); // SAGAW
    expect(((cap.lo >>> 16) & 0x3f) + 1).toBe(57); // MGAW
    expect((cap.hi >>> 2) & 0xf).toBe(0b11); // SLLPS 37:34
    expect(bitOf(c, 39)).toBe(1); // PSI
    expect(bitOf(c, 56)).toBe(1); // FL1GP
    expect(bitOf(c, 60)).toBe(1); // FL5LP
    expect(cap.lo & 7).toBe(6); // ND
    expect(domainCount(DEFAULT_CAPS)).toBe(65536);
    expect(bitOf(e, 26)).toBe(1); // NEST
    expect(bitOf(e, 29)).toBe(1); // PRS
    expect(bitOf(e, 2)).toBe(1); // DT
    expect(bitOf(e, 40)).toBe(1); // PASID
    expect((ecap.hi >>> 3) & 0x1f).toBe(19); // PSS 39:35
    expect(bitOf(e, 43)).toBe(1); // SMTS
    expect(bitOf(e, 46)).toBe(1); // SLTS
    expect(bitOf(e, 47)).toBe(1); // FLTS
    expect(decodeCaps(cap, ecap)).toEqual({ ...DEFAULT_CAPS });
    const v = vIommuCaps();
    expect(bitOf([encodeCap(v).lo], 7)).toBe(1);
    expect(decodeCaps(encodeCap(v), encodeEcap(v)).cachingMode).toBe(true);
  });
});

describe('structure encoders', () => {
  it('root entry: LP/LCTP low, UP/UCTP high', () => {
    const w = encodeRootEntry({ lowerPresent: true, lowerCtp: 0x12_3456_7000, upperPresent: true, upperCtp: 0x9000 });
    expect(bitOf(w, 0)).toBe(1);
    expect(bitOf(w, 64)).toBe(1);
    expect(w[1]).toBe(0x12);
    expect(w[2]! & ~1).toBe(0x9000);
    expect(decodeRootEntry(w)).toEqual({ lowerPresent: true, lowerCtp: 0x12_3456_7000, upperPresent: true, upperCtp: 0x9000 });
  });

  it('context entry: P FPD DTE PASIDE PRE, PDTS 11:9, dir 63:12, RID_PASID 83:64', () => {
    const e = { present: true, fpd: false, dte: true, paside: true, pre: true, pdts: 5, pasidDirPtr: 0x3_0000_2000, ridPasid: 0xabcde };
    const w = encodeContextEntry(e);
    expect([bitOf(w, 0), bitOf(w, 1), bitOf(w, 2), bitOf(w, 3), bitOf(w, 4)]).toEqual([1, 0, 1, 1, 1]);
    expect((w[0]! >>> 9) & 7).toBe(5);
    expect(w[1]).toBe(3);
    expect(w[2]).toBe(0xabcde);
    expect(decodeContextEntry(w)).toEqual(e);
  });

  it('PASID directory entry', () => {
    const w = encodePasidDirEntry({ present: true, fpd: true, pasidTablePtr: 0x7000 });
    expect(w[0]).toBe(0x7003);
    expect(decodePasidDirEntry(w)).toEqual({ present: true, fpd: true, pasidTablePtr: 0x7000 });
  });

  it('PASID entry: linux pasid.h positions', () => {
    const e = {
      ...emptyPasidEntry(),
      present: true, aw: 2, pgtt: PGTT.NESTED, ssade: true, slptptr: 0x5_0000_1000, did: 0x1234,
      pwsnp: true, pgsnp: true, sre: true, flpm: 1, wpe: true, eafe: true, flptr: 0x1_ffff_f000_0000,
    };
    const w = encodePasidEntry(e);
    expect(bitOf(w, 0)).toBe(1);
    expect((w[0]! >>> 2) & 7).toBe(2); // AW 4:2
    expect((w[0]! >>> 6) & 7).toBe(3); // PGTT 8:6
    expect(bitOf(w, 9)).toBe(1); // SSADE
    expect(w[1]).toBe(5); // SLPTPTR high
    expect(w[2]! & 0xffff).toBe(0x1234); // DID 79:64
    expect(bitOf(w, 87)).toBe(1); // PWSNP
    expect(bitOf(w, 88)).toBe(1); // PGSNP
    expect(bitOf(w, 128)).toBe(1); // SRE
    expect((w[4]! >>> 2) & 3).toBe(1); // FLPM 131:130
    expect(bitOf(w, 132)).toBe(1); // WPE
    expect(bitOf(w, 135)).toBe(1); // EAFE
    expect(w[5]).toBe(0x1ffff); // FLPTR 191:160 (a 57-bit GPA)
    expect(w[4]! >>> 12).toBe(0xf0000);
    expect(decodePasidEntry(w)).toEqual(e);
  });
});

describe('register file', () => {
  it('CAP/ECAP read-only; RTADDR + GCMD.SRTP latches a scalable root; GCMD.TE sets GSTS.TES', () => {
    const v = new Vtd(new PhysicalMemory());
    expect(v.regs.read64(REG.CAP)).toBe((BigInt(encodeCap(DEFAULT_CAPS).hi) << 32n) | BigInt(encodeCap(DEFAULT_CAPS).lo));
    v.regs.write64(REG.CAP, 0n);
    expect(v.readCaps()).toEqual({ ...DEFAULT_CAPS });
    v.regs.write64(REG.RTADDR, 0x1_2345_6000n | BigInt(RTADDR_SMT));
    v.regs.write32(REG.GCMD, GCMD.SRTP);
    expect(v.rootTableAddress).toBe(0x1_2345_6000);
    expect(v.scalableMode).toBe(true);
    expect(v.regs.read32(REG.GSTS) & GSTS.RTPS).not.toBe(0);
    expect(v.translationEnabled).toBe(false);
    v.regs.write32(REG.GCMD, GCMD.TE);
    expect(v.translationEnabled).toBe(true);
    expect((v.regs.read32(REG.GSTS) & GSTS.TES) >>> 0).toBe(GSTS.TES >>> 0);
    v.regs.write32(REG.GSTS, 0);
    expect(v.translationEnabled).toBe(true);
    expect(() => v.regs.read32(0x1001)).toThrow(RangeError);
  });

  it('lets later layers hook register writes', () => {
    const v = new Vtd(new PhysicalMemory());
    const seen: number[] = [];
    v.regs.onWrite(REG.IQT, (_o, val) => seen.push(val));
    v.regs.write64(REG.IQT, 0x40n);
    expect(seen).toEqual([0x40]);
    expect(v.regs.read64(REG.IQT)).toBe(0x40n);
  });
});
