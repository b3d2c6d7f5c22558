/**
 * The VT-d register file: read/write by byte offset, 32- or 64-bit, with per-register write hooks.
 * Offsets and bits: linux drivers/iommu/intel/iommu.h (DMAR_*_REG, DMA_GCMD_*, DMA_GSTS_*,
 * DMA_RTADDR_SMT) and qemu hw/i386/intel_iommu_internal.h; vtd-model §A.0.
 *
 * This issue implements CAP/ECAP, GCMD/GSTS and RTADDR. The invalidation queue (IQA/IQH/IQT/ICS),
 * fault registers (FSTS/FECTL/FRCD) and the PRQ registers come later: they are plain offsets
 * here, and their behaviour attaches through `onWrite`, which an MMIO front end also uses.
 */
import type { Reg64 } from './caps.ts';

export const REG = Object.freeze({
  VER: 0x00,
  CAP: 0x08,
  ECAP: 0x10,
  GCMD: 0x18,
  GSTS: 0x1c,
  RTADDR: 0x20,
  CCMD: 0x28,
  FSTS: 0x34,
  FECTL: 0x38,
  FEDATA: 0x3c,
  FEADDR: 0x40,
  FEUADDR: 0x44,
  IQH: 0x80,
  IQT: 0x88,
  IQA: 0x90,
  ICS: 0x9c,
  IECTL: 0xa0,
  IEDATA: 0xa4,
  IEADDR: 0xa8,
  IEUADDR: 0xac,
  IQER: 0xb0,
  IRTA: 0xb8,
  PQH: 0xc0,
  PQT: 0xc8,
  PQA: 0xd0,
  PRS: 0xdc,
  PECTL: 0xe0,
  PEDATA: 0xe4,
  PEADDR: 0xe8,
  PEUADDR: 0xec,
});

/** GCMD (0x18) command bits and the matching GSTS (0x1c) status bits share positions. */
export const GCMD = Object.freeze({
  TE: 1 << 31, // translation enable
  SRTP: 1 << 30, // set root table pointer (one-shot)
  SFL: 1 << 29,
  EAFL: 1 << 28,
  WBF: 1 << 27, // write-buffer flush (one-shot)
  QIE: 1 << 26, // queued invalidation enable
  IRE: 1 << 25, // interrupt remapping enable
  SIRTP: 1 << 24, // set interrupt remap table pointer (one-shot)
  CFI: 1 << 23,
});
export const GSTS = Object.freeze({
  TES: 1 << 31,
  RTPS: 1 << 30,
  FLS: 1 << 29,
  AFLS: 1 << 28,
  WBFS: 1 << 27,
  QIES: 1 << 26,
  IRES: 1 << 25,
  IRTPS: 1 << 24,
  CFIS: 1 << 23,
});

/** RTADDR bit 10 (TTM = 01b): scalable-mode root table (DMA_RTADDR_SMT / VTD_RTADDR_SMT). */
export const RTADDR_SMT = 1 << 10;

/** VT-d 1.0 register space is one 4 KiB page. */
export const REG_SPACE_SIZE = 0x1000;

export type RegWriteHook = (offset: number, value: number, regs: RegisterFile) => void;

export class RegisterFile {
  private readonly words = new Int32Array(REG_SPACE_SIZE / 4);
  private readonly readOnly = new Uint8Array(REG_SPACE_SIZE / 4);
  private readonly hooks = new Map<number, RegWriteHook>();

  /** Raw 32-bit value (no side effects): what the hardware itself uses. */
  get32(offset: number): number {
    return this.words[offset >>> 2]! >>> 0;
  }
  /** Raw set (no hooks, ignores read-only): hardware updating its own status. */
  set32(offset: number, value: number): void {
    this.words[offset >>> 2] = value | 0;
  }
  get64(offset: number): Reg64 {
    return { lo: this.get32(offset), hi: this.get32(offset + 4) };
  }
  set64(offset: number, v: Reg64): void {
    this.set32(offset, v.lo);
    this.set32(offset + 4, v.hi);
  }

  /** Mark a dword read-only for software writes (CAP, ECAP, GSTS …). */
  setReadOnly(offset: number, bytes = 4): void {
    for (let o = offset; o < offset + bytes; o += 4) this.readOnly[o >>> 2] = 1;
  }

  /**
   * Attach behaviour to a software write of the dword at `offset`. The hook runs after the value is
   * stored; a 64-bit write runs the low dword's hook after both halves are stored.
   */
  onWrite(offset: number, hook: RegWriteHook): void {
    this.hooks.set(offset, hook);
  }

  // ---- software (MMIO) accesses --------------------------------------------------------------

  read32(offset: number): number {
    checkOffset(offset, 4);
    return this.get32(offset);
  }

  write32(offset: number, value: number): void {
    checkOffset(offset, 4);
    if (this.readOnly[offset >>> 2] === 1) return;
    this.set32(offset, value);
    this.hooks.get(offset)?.(offset, value >>> 0, this);
  }

  read64(offset: number): bigint {
    checkOffset(offset, 8);
    const v = this.get64(offset);
    return (BigInt(v.hi) << 32n) | BigInt(v.lo);
  }

  write64(offset: number, value: bigint): void {
    checkOffset(offset, 8);
    const lo = Number(value & 0xffffffffn);
    const hi = Number((value >> 32n) & 0xffffffffn);
    if (this.readOnly[offset >>> 2] !== 1) this.set32(offset, lo);
    if (this.readOnly[(offset + 4) >>> 2] !== 1) this.set32(offset + 4, hi);
    this.hooks.get(offset)?.(offset, lo >>> 0, this);
    this.hooks.get(offset + 4)?.(offset + 4, hi >>> 0, this);
  }
}

function checkOffset(offset: number, size: number): void {
  if (offset < 0 || offset + size > REG_SPACE_SIZE || offset % size !== 0) {
    throw new RangeError(`bad VT-d register access: offset 0x${offset.toString(16)} size ${size}`);
  }
}
