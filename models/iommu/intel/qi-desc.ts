/**
 * Invalidation descriptors as the driver builds them: the QI_* macros of
 * drivers/iommu/intel/iommu.h (v6.15). A descriptor is 256 bits, kept as eight 32-bit words
 * [qw0 lo, qw0 hi, qw1 lo, qw1 hi, qw2 …, qw3 …] so that 64-bit fields need no BigInt.
 * The hardware model decodes them on its own (models/hw): the two sides check each other.
 */
export type QiDesc = Int32Array;

export const QI_CC_TYPE = 0x1;
export const QI_IOTLB_TYPE = 0x2;
export const QI_DIOTLB_TYPE = 0x3;
export const QI_IWD_TYPE = 0x5;
export const QI_EIOTLB_TYPE = 0x6;
export const QI_PC_TYPE = 0x7;
export const QI_DEIOTLB_TYPE = 0x8;
export const QI_PGRP_RESP_TYPE = 0x9;

/** granularities, already shifted down to bits 5:4 as QI_*_GRAN() does */
export const QI_CC_GLOBAL = 1;
export const QI_CC_DOMAIN = 2;
export const QI_CC_DEVICE = 3;
export const QI_IOTLB_GLOBAL = 1;
export const QI_IOTLB_DSI = 2;
export const QI_IOTLB_PSI = 3;
export const QI_PC_ALL_PASIDS = 0;
export const QI_PC_PASID_SEL = 1;
export const QI_PC_GLOBAL = 3;
export const QI_GRAN_NONG_PASID = 2;
export const QI_GRAN_PSI_PASID = 3;

export const QI_RESP_SUCCESS = 0x0;
export const QI_RESP_INVALID = 0x1;
export const QI_RESP_FAILURE = 0xf;

/** desc_status values (dmar.c) */
export const QI_FREE = 0;
export const QI_IN_USE = 1;
export const QI_DONE = 2;
export const QI_ABORT = 3;

const TWO32 = 4294967296;

function desc(): QiDesc {
  return new Int32Array(8);
}

/** bits 63:12 of a page address into (lo, hi) of a qword, keeping the low 12 bits free */
function setAddr(d: QiDesc, qw: number, addr: number): void {
  d[qw * 2] = (d[qw * 2]! & 0xfff) | ((addr >>> 0) & ~0xfff);
  d[qw * 2 + 1] = Math.floor(addr / TWO32) | 0;
}

/** QI_CC: context-cache invalidation */
export function qiCc(gran: number, did: number, sid: number, fm: number): QiDesc {
  const d = desc();
  d[0] = QI_CC_TYPE | (gran << 4) | ((did & 0xffff) << 16);
  d[1] = (sid & 0xffff) | ((fm & 3) << 16);
  return d;
}

/** QI_IOTLB: IOTLB invalidation (global / DSI / PSI with address mask and IH) */
export function qiIotlb(gran: number, did: number, addr: number, am: number, ih: boolean): QiDesc {
  const d = desc();
  // DR and DW (bits 7, 6): drain reads and writes, as qi_flush_iotlb sets when the caps allow
  d[0] = QI_IOTLB_TYPE | (gran << 4) | (1 << 6) | (1 << 7) | ((did & 0xffff) << 16);
  d[2] = (am & 0x3f) | (ih ? 1 << 6 : 0);
  if (gran === QI_IOTLB_PSI) setAddr(d, 1, addr);
  return d;
}

/** QI_EIOTLB: PASID-based IOTLB invalidation; npages −1 (all) uses the non-global PASID granularity */
export function qiPiotlb(did: number, pasid: number, addr: number, am: number, ih: boolean, all: boolean): QiDesc {
  const d = desc();
  d[0] = QI_EIOTLB_TYPE | ((all ? QI_GRAN_NONG_PASID : QI_GRAN_PSI_PASID) << 4) | ((did & 0xffff) << 16);
  d[1] = pasid & 0xfffff;
  if (!all) {
    d[2] = (am & 0x3f) | (ih ? 1 << 6 : 0);
    setAddr(d, 1, addr);
  }
  return d;
}

/** QI_PC: PASID-cache invalidation */
export function qiPc(gran: number, did: number, pasid: number): QiDesc {
  const d = desc();
  d[0] = QI_PC_TYPE | (gran << 4) | ((did & 0xffff) << 16);
  d[1] = pasid & 0xfffff;
  return d;
}

function pfsidBits(d: QiDesc, pfsid: number): void {
  d[0] = d[0]! | ((pfsid & 0xf) << 12);
  d[1] = d[1]! | (((pfsid >>> 4) & 0xfff) << 20);
}

/**
 * QI_DIOTLB: device-TLB invalidation of 2^mask pages at addr (mask 52: everything), as
 * qi_flush_dev_iotlb encodes the size in the address's low bits with S = 1.
 */
export function qiDevIotlb(sid: number, pfsid: number, qdep: number, addr: number, mask: number): QiDesc {
  const d = desc();
  d[0] = QI_DIOTLB_TYPE | ((qdep & 0x1f) << 16);
  d[1] = sid & 0xffff;
  pfsidBits(d, pfsid);
  // QI_DEV_IOTLB_SIZE is bit 0 of qw1 for this type
  sizedAddr(d, addr, mask, 0);
  return d;
}

/** QI_DEIOTLB: PASID-based device-TLB invalidation */
export function qiDevIotlbPasid(sid: number, pfsid: number, pasid: number, qdep: number, addr: number, mask: number): QiDesc {
  const d = desc();
  d[0] = QI_DEIOTLB_TYPE | ((qdep & 0x1f) << 4) | ((sid & 0xffff) << 16);
  d[1] = pasid & 0xfffff;
  pfsidBits(d, pfsid);
  // QI_DEV_EIOTLB_SIZE is bit 11 of qw1 for this type
  sizedAddr(d, addr, mask, 11);
  return d;
}

/** addr |= (1 << (12 + mask − 1)) − 1 and S = 1 (at `sBit` of qw1) for mask > 0 */
function sizedAddr(d: QiDesc, addr: number, mask: number, sBit: number): void {
  if (mask === 0) {
    setAddr(d, 1, addr);
    return;
  }
  const bits = 12 + mask - 1; // low bits set to 1 below this position
  let lo = addr >>> 0;
  let hi = Math.floor(addr / TWO32) >>> 0;
  if (bits >= 32) {
    lo = 0xffffffff;
    hi = (hi | (2 ** (bits - 32) - 1)) >>> 0;
  } else {
    lo = (lo | (2 ** bits - 1)) >>> 0;
  }
  d[2] = (lo & ~0xfff) | (1 << sBit);
  d[3] = hi | 0;
}

/**
 * QI_IWD: invalidation wait; with SW, a status write of `data` to `statusAddr`; FN fences; PD
 * drains page requests.
 */
export function qiWait(statusAddr: number, data: number, drain: boolean, fence = false, statusWrite = true): QiDesc {
  const d = desc();
  d[0] = QI_IWD_TYPE | (statusWrite ? 1 << 5 : 0) | (fence ? 1 << 6 : 0) | (drain ? 1 << 7 : 0);
  d[1] = data | 0;
  d[2] = statusAddr >>> 0;
  d[3] = Math.floor(statusAddr / TWO32) | 0;
  return d;
}

/** QI_PGRP_RESP: page group response */
export function qiPageGroupResponse(rid: number, pasid: number, pasidPresent: boolean, code: number, prgIndex: number): QiDesc {
  const d = desc();
  d[0] = QI_PGRP_RESP_TYPE | (pasidPresent ? 1 << 4 : 0) | ((code & 0xf) << 12) | ((rid & 0xffff) << 16);
  d[1] = pasid & 0xfffff;
  d[2] = (prgIndex & 0x1ff) << 3;
  return d;
}

/** the descriptor type, for traces and tests */
export function qiType(d: QiDesc): number {
  return d[0]! & 0xf;
}
