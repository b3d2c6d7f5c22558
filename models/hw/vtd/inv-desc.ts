/**
 * Invalidation-queue descriptors (vtd-model §B.2): decoders from 32-bit words (hot path: no BigInt,
 * no allocation) and encoders (cold: tests, drivers).
 *
 * Field positions: torvalds/linux drivers/iommu/intel/iommu.h QI_* macros and the qi_desc_* builders;
 * qemu hw/i386/intel_iommu_internal.h VTD_INV_DESC_*. A descriptor is 128 or 256 bits; as words,
 * w[0] = qw0 bits 31:0, w[1] = qw0 bits 63:32, w[2]/w[3] = qw1, w[4..7] = qw2/qw3.
 *
 * Reserved-bit masks follow QEMU's VTD_INV_DESC_*_RSVD* except where Linux writes a field QEMU
 * calls reserved (PFSID in the device-TLB descriptors, PDP in the page group response): there the
 * field Linux writes is accepted.
 */

const TWO_POW_32 = 4294967296;

/** Descriptor types: qw0 bits 3:0 plus type[6:4] in bits 11:9 (qemu VTD_INV_DESC_TYPE). */
export const QI_TYPE = Object.freeze({
  CC: 1, // context-cache
  IOTLB: 2,
  DEV_TLB: 3, // device-TLB (ATS), requests without PASID
  IEC: 4, // interrupt entry cache (accepted, no effect: interrupt remapping is not modelled)
  WAIT: 5,
  PIOTLB: 6, // PASID-based IOTLB
  PC: 7, // PASID-cache
  DEV_PIOTLB: 8, // PASID-based device-TLB
  PGRP_RESP: 9, // page group response
});

/**
 * IQER.IQEI codes [R: VT-d spec 4.x §11.4.9.9 as recalled, not re-verified]: why IQE was set.
 * Linux only prints the value (qi_dump_fault), so the exact numbering changes no behaviour.
 */
export const IQEI = Object.freeze({
  NONE: 0,
  INVALID_TAIL: 1, // IQT beyond the queue
  INVALID_TYPE: 3, // reserved or unsupported descriptor type
  RESERVED_FIELD: 4, // reserved bit set, or a reserved granularity / AM above MAMV
  TAIL_MISALIGNED: 6, // IQT bit 4 set with 256-bit descriptors (qemu VTD_IQT_QT_256_RSV_BIT)
});

/** Page group response codes (linux QI_RESP_*). */
export const PRG_RESP = Object.freeze({ SUCCESS: 0, INVALID: 1, FAILURE: 0xf });

/** The decoded fields of one descriptor. One instance per queue, overwritten per descriptor. */
export class InvDesc {
  type = 0;
  /** Granularity G (qw0 bits 5:4) for CC, IOTLB, P_IOTLB, PC. */
  g = 0;
  did = 0;
  sid = 0;
  /** Context-cache function mask. */
  fm = 0;
  pasid = 0;
  /** Page-aligned address from qw1 (a number: a 64-bit address with 12 zero low bits is exact). */
  addr = 0;
  am = 0;
  ih = false;
  /** Device-TLB: number of 4 KiB pages from the S bit and the low address bits; Infinity = all. */
  pages = 1;
  /** PASID device-TLB G bit (qw1 bit 0): applies to all PASIDs. */
  globalPasids = false;
  // wait
  intr = false;
  statusWrite = false;
  fence = false;
  prqDrain = false;
  statusData = 0;
  statusAddr = 0;
  // page group response
  pasidPresent = false;
  respCode = 0;
  prgi = 0;
  lpig = false;
}

/**
 * Decode the descriptor at words[off..]. Returns 0, or the IQEI reason the hardware sets in IQER
 * when it refuses the descriptor (then IQE stops the queue at it). `mamv` bounds AM.
 */
export function decodeInvDesc(words: Int32Array, off: number, wide: boolean, mamv: number, d: InvDesc): number {
  const q0lo = words[off]!;
  const q0hi = words[off + 1]!;
  const q1lo = words[off + 2]!;
  const q1hi = words[off + 3]!;
  const type = (q0lo & 0xf) | (((q0lo >>> 9) & 7) << 4);
  d.type = type;
  const upperZero = !wide || (words[off + 4]! | words[off + 5]! | words[off + 6]! | words[off + 7]!) === 0;
  switch (type) {
    case QI_TYPE.CC: {
      // VTD_INV_DESC_CC_RSVD 0xfffc00000000ffc0; qw1 reserved
      if ((q0lo & 0xffc0) !== 0 || (q0hi & 0xfffc0000) !== 0 || (q1lo | q1hi) !== 0 || !upperZero) return IQEI.RESERVED_FIELD;
      d.g = (q0lo >>> 4) & 3;
      if (d.g === 0) return IQEI.RESERVED_FIELD;
      d.did = (q0lo >>> 16) & 0xffff;
      d.sid = q0hi & 0xffff;
      d.fm = (q0hi >>> 16) & 3;
      return 0;
    }
    case QI_TYPE.IOTLB: {
      // VTD_INV_DESC_IOTLB_RSVD_LO 0xffffffff0000ff00, _HI 0xf80 (DW bit 6 and DR bit 7 allowed)
      if ((q0lo & 0xff00) !== 0 || q0hi !== 0 || (q1lo & 0xf80) !== 0 || !upperZero) return IQEI.RESERVED_FIELD;
      d.g = (q0lo >>> 4) & 3;
      d.did = (q0lo >>> 16) & 0xffff;
      d.am = q1lo & 0x3f;
      d.ih = (q1lo & 0x40) !== 0;
      d.addr = pageAddr(q1lo, q1hi);
      if (d.g === 0 || (d.g === 3 && d.am > mamv)) return IQEI.RESERVED_FIELD;
      return 0;
    }
    case QI_TYPE.DEV_TLB: {
      // linux qi_desc_dev_iotlb: PFSID 15:12 + 63:52, QDEP 20:16, SID 47:32; qw1 S bit 0, ADDR 63:12
      if ((q0lo & 0xffe001f0) !== 0 || (q0hi & 0x000f0000) !== 0 || (q1lo & 0xffe) !== 0 || !upperZero) {
        return IQEI.RESERVED_FIELD;
      }
      d.sid = q0hi & 0xffff;
      d.pasid = -1;
      d.globalPasids = false;
      decodeAtsRange(q1lo, q1hi, (q1lo & 1) !== 0, d);
      return 0;
    }
    case QI_TYPE.IEC: {
      // VTD_INV_DESC_IEC_RSVD 0xffff000007fff1e0
      if ((q0lo & 0x07fff1e0) !== 0 || (q0hi & 0xffff0000) !== 0 || (q1lo | q1hi) !== 0 || !upperZero) return IQEI.RESERVED_FIELD;
      return 0;
    }
    case QI_TYPE.WAIT: {
      // IF 4, SW 5, FN 6, PD 7, status data 63:32; status address 4-byte aligned
      if ((q0lo & 0xfffff100) !== 0 || (q1lo & 3) !== 0 || !upperZero) return IQEI.RESERVED_FIELD;
      d.intr = (q0lo & 0x10) !== 0;
      d.statusWrite = (q0lo & 0x20) !== 0;
      d.fence = (q0lo & 0x40) !== 0;
      d.prqDrain = (q0lo & 0x80) !== 0;
      d.statusData = q0hi >>> 0;
      d.statusAddr = (q1hi >>> 0) * TWO_POW_32 + (q1lo >>> 0);
      return 0;
    }
    case QI_TYPE.PIOTLB: {
      // VTD_INV_DESC_PIOTLB_RSVD_VAL0 0xfff000000000f1c0, _VAL1 0xf80
      if ((q0lo & 0xf1c0) !== 0 || (q0hi & 0xfff00000) !== 0 || (q1lo & 0xf80) !== 0 || !upperZero) return IQEI.RESERVED_FIELD;
      d.g = (q0lo >>> 4) & 3;
      d.did = (q0lo >>> 16) & 0xffff;
      d.pasid = q0hi & 0xfffff;
      d.am = q1lo & 0x3f;
      d.ih = (q1lo & 0x40) !== 0;
      d.addr = pageAddr(q1lo, q1hi);
      if (d.g < 2 || (d.g === 3 && d.am > mamv)) return IQEI.RESERVED_FIELD;
      return 0;
    }
    case QI_TYPE.PC: {
      // VTD_INV_DESC_PASIDC_RSVD_VAL0 0xfff000000000f1c0; qw1 reserved
      if ((q0lo & 0xf1c0) !== 0 || (q0hi & 0xfff00000) !== 0 || (q1lo | q1hi) !== 0 || !upperZero) return IQEI.RESERVED_FIELD;
      d.g = (q0lo >>> 4) & 3;
      if (d.g === 2) return IQEI.RESERVED_FIELD;
      d.did = (q0lo >>> 16) & 0xffff;
      d.pasid = q0hi & 0xfffff;
      return 0;
    }
    case QI_TYPE.DEV_PIOTLB: {
      // linux qi_desc_dev_iotlb_pasid: QDEP 8:4, PFSID 15:12 + 63:52, SID 31:16, PASID 51:32;
      // qw1: G bit 0, reserved 10:1 (qemu RSVD_VAL1 0x7fe), S bit 11, ADDR 63:12
      if ((q1lo & 0x7fe) !== 0 || !upperZero) return IQEI.RESERVED_FIELD;
      d.sid = (q0lo >>> 16) & 0xffff;
      d.pasid = q0hi & 0xfffff;
      d.globalPasids = (q1lo & 1) !== 0;
      decodeAtsRange(q1lo, q1hi, (q1lo & 0x800) !== 0, d);
      return 0;
    }
    case QI_TYPE.PGRP_RESP: {
      // PASID-present 4, PDP 5 (private data in qw2/qw3), RESP_CODE 15:12, RID 31:16, PASID 51:32;
      // qw1: LPIG 2 (older Linux), PRG index 11:3 (qemu VTD_INV_DESC_PGRESP_RSVD_*)
      const pdp = (q0lo & 0x20) !== 0;
      if ((q0lo & 0x1c0) !== 0 || (q0hi & 0xfff00000) !== 0 || (q1lo & 0xfffff003) !== 0 || q1hi !== 0) return IQEI.RESERVED_FIELD;
      if (!pdp && !upperZero) return IQEI.RESERVED_FIELD;
      d.pasidPresent = (q0lo & 0x10) !== 0;
      d.respCode = (q0lo >>> 12) & 0xf;
      d.sid = (q0lo >>> 16) & 0xffff;
      d.pasid = q0hi & 0xfffff;
      d.prgi = (q1lo >>> 3) & 0x1ff;
      d.lpig = (q1lo & 4) !== 0;
      return 0;
    }
    default:
      return IQEI.INVALID_TYPE;
  }
}

function pageAddr(lo: number, hi: number): number {
  return (hi >>> 0) * TWO_POW_32 + ((lo & ~0xfff) >>> 0);
}

/**
 * ATS invalidation range (VT-d §6.5.2.5/6, PCIe ATS "Invalidate Request"; linux qi_desc_dev_iotlb*):
 * S = 0 is one 4 KiB page; with S = 1 the number of 1 bits from bit 12 upward gives the size:
 * n ones → 2^(n+1) pages, the range aligned to its size. ADDR[62:12] all ones is everything.
 */
function decodeAtsRange(lo: number, hi: number, s: boolean, d: InvDesc): void {
  const addr = pageAddr(lo, hi);
  if (!s) {
    d.addr = addr;
    d.pages = 1;
    return;
  }
  let ones = 0;
  let w = lo >>> 12;
  let bits = 20;
  while (bits > 0 && (w & 1) === 1) {
    ones++;
    w >>>= 1;
    bits--;
  }
  if (bits === 0) {
    w = hi;
    bits = 32;
    while (bits > 0 && (w & 1) === 1) {
      ones++;
      w >>>= 1;
      bits--;
    }
  }
  if (ones + 1 + 12 >= 64) {
    d.addr = 0;
    d.pages = Infinity;
    return;
  }
  const pages = 2 ** (ones + 1);
  const first = Math.floor(addr / 4096);
  d.addr = (first - (first % pages)) * 4096;
  d.pages = pages;
}

// ==== encoders (cold path) ========================================================================

/** A descriptor as 8 words (256 bits). */
export type DescWords = Int32Array;

function desc(q0lo: number, q0hi: number, q1lo = 0, q1hi = 0): DescWords {
  return Int32Array.of(q0lo | 0, q0hi | 0, q1lo | 0, q1hi | 0, 0, 0, 0, 0);
}
const lo32 = (a: number): number => (a % TWO_POW_32) | 0;
const hi32 = (a: number): number => Math.floor(a / TWO_POW_32) | 0;

/** linux qi_flush_context: G 1 global, 2 domain, 3 device (FM = function mask). */
export function encodeCcInv(o: { g: number; did?: number; sid?: number; fm?: number }): DescWords {
  return desc(QI_TYPE.CC | ((o.g & 3) << 4) | ((o.did ?? 0) << 16), ((o.sid ?? 0) & 0xffff) | (((o.fm ?? 0) & 3) << 16));
}

/** linux qi_desc_iotlb: G 1 global, 2 DSI, 3 PSI (2^am pages at addr; IH keeps the PWCs). */
export function encodeIotlbInv(o: { g: number; did?: number; addr?: number; am?: number; ih?: boolean; dw?: boolean; dr?: boolean }): DescWords {
  const a = o.addr ?? 0;
  return desc(
    QI_TYPE.IOTLB | ((o.g & 3) << 4) | (o.dw ? 0x40 : 0) | (o.dr ? 0x80 : 0) | ((o.did ?? 0) << 16),
    0,
    (lo32(a) & ~0xfff) | (o.ih ? 0x40 : 0) | ((o.am ?? 0) & 0x3f),
    hi32(a),
  );
}

/** linux qi_desc_piotlb / _all: G 2 all of (DID, PASID), 3 page-selective within the PASID. */
export function encodePiotlbInv(o: { g: number; did: number; pasid: number; addr?: number; am?: number; ih?: boolean }): DescWords {
  const a = o.addr ?? 0;
  return desc(
    QI_TYPE.PIOTLB | ((o.g & 3) << 4) | (o.did << 16),
    o.pasid & 0xfffff,
    o.g === 3 ? (lo32(a) & ~0xfff) | (o.ih ? 0x40 : 0) | ((o.am ?? 0) & 0x3f) : 0,
    o.g === 3 ? hi32(a) : 0,
  );
}

/** linux qi_flush_pasid_cache: G 0 all PASIDs of DID, 1 one PASID, 3 global. */
export function encodePcInv(o: { g: number; did?: number; pasid?: number }): DescWords {
  return desc(QI_TYPE.PC | ((o.g & 3) << 4) | ((o.did ?? 0) << 16), (o.pasid ?? 0) & 0xfffff);
}

/** ATS address bits for 2^order pages at addr (linux qi_desc_dev_iotlb_pasid); order ≥ 52 = all. */
function atsAddr(addr: number, order: number): { lo: number; hi: number } {
  if (order === 0) return { lo: lo32(addr) & ~0xfff, hi: hi32(addr) };
  if (order >= 52) return { lo: 0xfffff000 | 0, hi: 0x7fffffff };
  // ones in bits 12 .. 12+order-2, bit 12+order-1 clear
  let lo = lo32(addr) & ~0xfff;
  let hi = hi32(addr);
  for (let b = 12; b <= 12 + order - 2; b++) {
    if (b < 32) lo |= 1 << b;
    else hi |= 1 << (b - 32);
  }
  const clear = 12 + order - 1;
  if (clear < 32) lo &= ~(1 << clear);
  else hi &= ~(1 << (clear - 32));
  return { lo, hi };
}

/** linux qi_desc_dev_iotlb: device-TLB invalidation for requests without PASID (S in qw1 bit 0). */
export function encodeDevTlbInv(o: { sid: number; addr?: number; order?: number; pfsid?: number; qdep?: number }): DescWords {
  const order = o.order ?? 0;
  const a = atsAddr(o.addr ?? 0, order);
  const pfsid = o.pfsid ?? 0;
  return desc(
    QI_TYPE.DEV_TLB | ((pfsid & 0xf) << 12) | (((o.qdep ?? 0) & 0x1f) << 16),
    (o.sid & 0xffff) | (((pfsid >>> 4) & 0xfff) << 20),
    a.lo | (order > 0 ? 1 : 0),
    a.hi,
  );
}

/** linux qi_desc_dev_iotlb_pasid: PASID device-TLB invalidation (S in qw1 bit 11, G in bit 0). */
export function encodeDevPiotlbInv(o: {
  sid: number;
  pasid: number;
  addr?: number;
  order?: number;
  globalPasids?: boolean;
  pfsid?: number;
  qdep?: number;
}): DescWords {
  const order = o.order ?? 0;
  const a = atsAddr(o.addr ?? 0, order);
  const pfsid = o.pfsid ?? 0;
  return desc(
    QI_TYPE.DEV_PIOTLB | (((o.qdep ?? 0) & 0x1f) << 4) | ((pfsid & 0xf) << 12) | ((o.sid & 0xffff) << 16),
    (o.pasid & 0xfffff) | (((pfsid >>> 4) & 0xfff) << 20),
    a.lo | (order > 0 ? 0x800 : 0) | (o.globalPasids ? 1 : 0),
    a.hi,
  );
}

/** An everything-for-this-PASID device-TLB flush (linux: size_order 64 - 12, ADDR 0x7FFFFFFFFFFFF). */
export const DEVTLB_ALL_ORDER = 52;

/** linux qi_submit_sync's wait: SW with status data → status address; IF, FN, PD optional. */
export function encodeWait(o: { statusAddr?: number; statusData?: number; sw?: boolean; intr?: boolean; fence?: boolean; drain?: boolean }): DescWords {
  const sw = o.sw ?? o.statusAddr !== undefined;
  const a = o.statusAddr ?? 0;
  return desc(
    QI_TYPE.WAIT | (o.intr ? 0x10 : 0) | (sw ? 0x20 : 0) | (o.fence ? 0x40 : 0) | (o.drain ? 0x80 : 0),
    (o.statusData ?? 0) | 0,
    lo32(a),
    hi32(a),
  );
}

/** linux intel_iommu_page_response: page group response (type 9). */
export function encodePageGroupResponse(o: { rid: number; pasid?: number; prgi: number; code: number; lpig?: boolean }): DescWords {
  const pp = o.pasid !== undefined && o.pasid >= 0;
  return desc(
    QI_TYPE.PGRP_RESP | (pp ? 0x10 : 0) | ((o.code & 0xf) << 12) | ((o.rid & 0xffff) << 16),
    pp ? o.pasid! & 0xfffff : 0,
    ((o.prgi & 0x1ff) << 3) | (o.lpig ? 4 : 0),
    0,
  );
}

/** An IEC descriptor (global), accepted as a no-op (linux qi_global_iec). */
export function encodeIecInv(): DescWords {
  return desc(QI_TYPE.IEC, 0);
}
