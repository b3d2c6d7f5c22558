/**
 * CAP_REG (0x08) and ECAP_REG (0x10): the capability bits the model honours.
 * Bit positions: torvalds/linux drivers/iommu/intel/iommu.h (cap_* / ecap_* decoders) and
 * qemu hw/i386/intel_iommu_internal.h (VTD_CAP_* / VTD_ECAP_*); vtd-model.md §A.0.
 * 64-bit registers are kept as two u32 halves (`lo` = bits 31:0, `hi` = bits 63:32).
 */

export interface Reg64 {
  lo: number;
  hi: number;
}

export interface VtdCaps {
  // ---- CAP_REG ----
  /** ND[2:0]: number of domains = 2^(4 + 2·ND). 6 → 65536 (16-bit DIDs). */
  nd: number;
  /** CM, bit 7: caching mode. Hardware may cache not-present entries; 1 for a vIOMMU. */
  cachingMode: boolean;
  /** SAGAW[12:8]: bit n set = AGAW n supported (1: 39-bit/3-level, 2: 48/4, 3: 57/5). */
  sagaw: number;
  /** MGAW[21:16] + 1: maximum guest address width in bits. */
  mgaw: number;
  /** FRO[33:24]: fault recording registers at offset FRO × 16 (filled by a later issue). */
  fro: number;
  /** SLLPS[37:34]: bit 0 = 2 MiB, bit 1 = 1 GiB second-stage pages. */
  sllps: number;
  /** PSI, bit 39: page-selective invalidation. */
  psi: boolean;
  /** NFR[47:40] + 1: number of fault recording registers. */
  nfr: number;
  /** MAMV[53:48]: maximum address mask value for page-selective invalidation. */
  mamv: number;
  /** FL1GP, bit 56: first-stage 1 GiB pages. */
  fl1gp: boolean;
  /** FL5LP, bit 60: first-stage 5-level paging. */
  fl5lp: boolean;

  // ---- ECAP_REG ----
  /** QI, bit 1: queued invalidation. */
  qi: boolean;
  /** DT, bit 2: device-TLB (ATS). */
  dt: boolean;
  /** IR, bit 3: interrupt remapping. */
  ir: boolean;
  /** PT, bit 6: pass-through. */
  pt: boolean;
  /** SC, bit 7: snoop control. */
  sc: boolean;
  /** IRO[17:8]: IOTLB register offset / 16. */
  iro: number;
  /** NEST, bit 26: nested translation. */
  nest: boolean;
  /** PRS, bit 29: page requests. */
  prs: boolean;
  /** ERS, bit 30: execute requests. */
  ers: boolean;
  /** SRS, bit 31: supervisor requests. */
  srs: boolean;
  /** EAFS, bit 34: extended access flag. */
  eafs: boolean;
  /** PSS[39:35]: supported PASID width − 1 (19 → 20-bit PASIDs). */
  pss: number;
  /** PASID, bit 40. */
  pasid: boolean;
  /** SMTS, bit 43: scalable-mode translation. */
  smts: boolean;
  /** SLADS, bit 45: second-stage A/D. */
  slads: boolean;
  /** SLTS, bit 46: second-stage translation. */
  slts: boolean;
  /** FLTS, bit 47: first-stage translation. */
  flts: boolean;
  /** SMPWC, bit 48: scalable-mode page-walk coherency. */
  smpwc: boolean;
}

/**
 * A default resembling a current (Sapphire Rapids-class) server VT-d in scalable mode. [E]: the
 * exact register values of a given part are not in the sources read; this set enables everything
 * both designs need (SMTS, NEST, FLTS, SLTS, 20-bit PASIDs, PRS, DT, 1 GiB pages both stages, 5-level).
 */
export const DEFAULT_CAPS: Readonly<VtdCaps> = Object.freeze({
  nd: 6,
  cachingMode: false,
  sagaw: 0b01100, // 48-bit/4-level and 57-bit/5-level
  mgaw: 57,
  fro: 0x220 >> 4, // QEMU's FRCD offset 0x220 (intel_iommu_internal.h DMAR_FRCD_REG_OFFSET)
  sllps: 0b11,
  psi: true,
  nfr: 8,
  mamv: 18, // QEMU VTD_MAMV
  fl1gp: true,
  fl5lp: true,
  qi: true,
  dt: true,
  ir: true,
  pt: true,
  sc: true,
  iro: 0xf0 >> 4, // QEMU DMAR_IOTLB_REG_OFFSET 0xf0
  nest: true,
  prs: true,
  ers: false,
  srs: true,
  eafs: true,
  pss: 19,
  pasid: true,
  smts: true,
  slads: true,
  slts: true,
  flts: true,
  smpwc: true,
});

/** A guest-visible vIOMMU default: same features, caching mode on (QEMU needs CM=1 for VFIO). */
export function vIommuCaps(overrides: Partial<VtdCaps> = {}): VtdCaps {
  return { ...DEFAULT_CAPS, cachingMode: true, ...overrides };
}

const bit = (b: boolean, n: number): number => (b ? 1 << n : 0);

export function encodeCap(c: VtdCaps): Reg64 {
  const lo =
    (c.nd & 7) |
    bit(c.cachingMode, 7) |
    ((c.sagaw & 0x1f) << 8) |
    (((c.mgaw - 1) & 0x3f) << 16) |
    ((c.fro & 0xff) << 24); // FRO bits 31:24 here, 33:32 in hi
  const hi =
    ((c.fro >>> 8) & 3) |
    ((c.sllps & 0xf) << 2) | // 37:34
    bit(c.psi, 7) | // 39
    (((c.nfr - 1) & 0xff) << 8) | // 47:40
    ((c.mamv & 0x3f) << 16) | // 53:48
    bit(c.fl1gp, 24) | // 56
    bit(c.fl5lp, 28); // 60
  return { lo: lo >>> 0, hi: hi >>> 0 };
}

export function encodeEcap(c: VtdCaps): Reg64 {
  const lo =
    bit(c.qi, 1) |
    bit(c.dt, 2) |
    bit(c.ir, 3) |
    bit(c.pt, 6) |
    bit(c.sc, 7) |
    ((c.iro & 0x3ff) << 8) |
    bit(c.nest, 26) |
    bit(c.prs, 29) |
    bit(c.ers, 30) |
    bit(c.srs, 31);
  const hi =
    bit(c.eafs, 2) | // 34
    ((c.pss & 0x1f) << 3) | // 39:35
    bit(c.pasid, 8) | // 40
    bit(c.smts, 11) | // 43
    bit(c.slads, 13) | // 45
    bit(c.slts, 14) | // 46
    bit(c.flts, 15) | // 47
    bit(c.smpwc, 16); // 48
  return { lo: lo >>> 0, hi: hi >>> 0 };
}

const on = (w: number, n: number): boolean => ((w >>> n) & 1) === 1;

export function decodeCaps(cap: Reg64, ecap: Reg64): VtdCaps {
  return {
    nd: cap.lo & 7,
    cachingMode: on(cap.lo, 7),
    sagaw: (cap.lo >>> 8) & 0x1f,
    mgaw: ((cap.lo >>> 16) & 0x3f) + 1,
    fro: ((cap.lo >>> 24) & 0xff) | ((cap.hi & 3) << 8),
    sllps: (cap.hi >>> 2) & 0xf,
    psi: on(cap.hi, 7),
    nfr: ((cap.hi >>> 8) & 0xff) + 1,
    mamv: (cap.hi >>> 16) & 0x3f,
    fl1gp: on(cap.hi, 24),
    fl5lp: on(cap.hi, 28),
    qi: on(ecap.lo, 1),
    dt: on(ecap.lo, 2),
    ir: on(ecap.lo, 3),
    pt: on(ecap.lo, 6),
    sc: on(ecap.lo, 7),
    iro: (ecap.lo >>> 8) & 0x3ff,
    nest: on(ecap.lo, 26),
    prs: on(ecap.lo, 29),
    ers: on(ecap.lo, 30),
    srs: on(ecap.lo, 31),
    eafs: on(ecap.hi, 2),
    pss: (ecap.hi >>> 3) & 0x1f,
    pasid: on(ecap.hi, 8),
    smts: on(ecap.hi, 11),
    slads: on(ecap.hi, 13),
    slts: on(ecap.hi, 14),
    flts: on(ecap.hi, 15),
    smpwc: on(ecap.hi, 16),
  };
}

/** Number of domain IDs the ND field allows (cap_ndoms in iommu.h). */
export function domainCount(c: VtdCaps): number {
  return 2 ** (4 + 2 * c.nd);
}

/** Second-stage levels for an AGAW value (PASID entry AW, SAGAW bit index): 1→3, 2→4, 3→5. */
export function levelsForAgaw(agaw: number): number {
  return agaw + 2;
}
