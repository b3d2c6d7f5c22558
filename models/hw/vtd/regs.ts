/**
 * The VT-d register file: read/write by byte offset, 32- or 64-bit, with per-register write hooks.
 * Offsets and bits: linux drivers/iommu/intel/iommu.h (DMAR_*_REG, DMA_GCMD_*, DMA_GSTS_*,
 * DMA_RTADDR_SMT) and qemu hw/i386/intel_iommu_internal.h; vtd-model §A.0.
 *
 * Behaviour attaches through `onWrite` (after the store) and `onWriteFilter` (what is stored):
 * CAP/ECAP, GCMD/GSTS, RTADDR in vtd.ts; IQA/IQH/IQT/ICS/IQER in qi.ts; FSTS/FECTL/FRCD in
 * fault-recording.ts; PQA/PQH/PQT/PRS/PECTL in prq.ts. Software reaches them through mmio.ts.
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

/** FSTS (0x34) bits (linux DMA_FSTS_*); FRI is bits 15:8. PPF is read-only, the rest W1C. */
export const FSTS = Object.freeze({
  PFO: 1 << 0, // primary fault overflow
  PPF: 1 << 1, // primary pending fault
  IQE: 1 << 4, // invalidation queue error
  ICE: 1 << 5, // invalidation completion error
  ITE: 1 << 6, // invalidation time-out error (device-TLB)
  PRO: 1 << 7, // page request overflow (legacy position; PRS.PRO is the current one)
  FRI_SHIFT: 8,
});

/** ICS (0x9c): invalidation wait descriptor complete (W1C). */
export const ICS_IWC = 1;
/** PRS (0xdc): pending page request, page request overflow (W1C; linux DMA_PRS_*). */
export const PRS = Object.freeze({ PPR: 1, PRO: 2 });
/** IQA (0x90): DW (256-bit descriptors) bit 11, QS bits 2:0, base bits 63:12. */
export const IQA_DW = 1 << 11;
/** FRCD dword 3 (bits 127:96): F (fault) bit 31 (linux DMA_FRCD_F), T bit 30. */
export const FRCD_F = 1 << 31;

/** RTADDR bit 10 (TTM = 01b): scalable-mode root table (DMA_RTADDR_SMT / VTD_RTADDR_SMT). */
export const RTADDR_SMT = 1 << 10;

/** VT-d 1.0 register space is one 4 KiB page. */
export const REG_SPACE_SIZE = 0x1000;

export type RegWriteHook = (offset: number, value: number, regs: RegisterFile) => void;
/** Maps a software write to the value stored (write-1-to-clear, hardware-owned bits). */
export type RegWriteFilter = (offset: number, written: number, old: number) => number;

export class RegisterFile {
  private readonly words = new Int32Array(REG_SPACE_SIZE / 4);
  private readonly readOnly = new Uint8Array(REG_SPACE_SIZE / 4);
  private readonly hooks = new Map<number, RegWriteHook>();
  private readonly filters = new Map<number, RegWriteFilter>();

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

  /**
   * Shape what a software write of the dword at `offset` stores (W1C status bits, read-only
   * fields). Runs before the value is stored; the write hook still receives the written value.
   */
  onWriteFilter(offset: number, filter: RegWriteFilter): void {
    this.filters.set(offset, filter);
  }

  /** A software write's stored value and side effects, without running the write hook (a write a
   * VMM trapped and deferred: the register latches the value, the hardware has not acted). */
  latch32(offset: number, value: number): void {
    checkOffset(offset, 4);
    this.store(offset, value);
  }

  private store(offset: number, value: number): boolean {
    if (this.readOnly[offset >>> 2] === 1) return false;
    const f = this.filters.get(offset);
    this.set32(offset, f ? f(offset, value >>> 0, this.get32(offset)) : value);
    return true;
  }

  // ---- software (MMIO) accesses --------------------------------------------------------------

  read32(offset: number): number {
    checkOffset(offset, 4);
    return this.get32(offset);
  }

  write32(offset: number, value: number): void {
    checkOffset(offset, 4);
    if (!this.store(offset, value)) return;
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
    const storedLo = this.store(offset, lo);
    const storedHi = this.store(offset + 4, hi);
    if (storedLo) this.hooks.get(offset)?.(offset, lo >>> 0, this);
    if (storedHi) this.hooks.get(offset + 4)?.(offset + 4, hi >>> 0, this);
  }
}

function checkOffset(offset: number, size: number): void {
  if (offset < 0 || offset + size > REG_SPACE_SIZE || offset % size !== 0) {
    throw new RangeError(`bad VT-d register access: offset 0x${offset.toString(16)} size ${size}`);
  }
}
