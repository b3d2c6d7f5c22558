/**
 * Page walks: first stage (4/5 levels), second stage (3/4/5 levels) and the nested 2-D walk in which
 * every first-stage table pointer is a GPA translated through the second stage (vtd-model §A.5–A.6).
 *
 * Hot path rules (DESIGN principle 10): addresses are (hi, lo) 32-bit halves, table pointers are
 * page frame numbers (exact numbers), every entry read goes through PhysicalMemory.fetch (so the
 * reference count comes from the memory model), results go into fields, nothing is allocated.
 */
import type { PhysicalMemory } from '../memory.ts';
import { FR } from './faults.ts';
import type { FsPwc, SsPwc } from './caches.ts';

/** Request attributes. */
export const ACCESS = Object.freeze({ READ: 1, WRITE: 2, EXEC: 4, SUPERVISOR: 8 });

/** Internal second-stage walk outcomes, mapped to a fault reason by the caller's context. */
const SS_OK = 0;
const SS_NOT_PRESENT = 1;
const SS_RSVD = 2;
const SS_BEYOND_AW = 3;

const FS_A = 0x20;
const FS_D = 0x40;
const PS = 0x80;
const SS_A = 0x100;
const SS_D = 0x200;

// Hot-path constants as module-local bindings (an imported object's property is a getter under CJS transforms).
const FR_ADDR_BEYOND_MAX = FR.ADDR_BEYOND_MAX;
const FR_FS_ENTRY_P = FR.FS_ENTRY_P;
const FR_FS_ENTRY_RSVD = FR.FS_ENTRY_RSVD;
const FR_FS_NON_CANONICAL = FR.FS_NON_CANONICAL;
const FR_FS_PTPTR_INV = FR.FS_PTPTR_INV;
const FR_FS_US = FR.FS_US;
const FR_FS_XD = FR.FS_XD;
const FR_NESTED_FS_ENTRY_BEYOND_AW = FR.NESTED_FS_ENTRY_BEYOND_AW;
const FR_NESTED_FS_ENTRY_READ = FR.NESTED_FS_ENTRY_READ;
const FR_NESTED_FS_ENTRY_WRITE = FR.NESTED_FS_ENTRY_WRITE;
const FR_NESTED_FS_ROOT_READ = FR.NESTED_FS_ROOT_READ;
const FR_SM_READ = FR.SM_READ;
const FR_SM_WRITE = FR.SM_WRITE;
const FR_SS_ENTRY_RSVD = FR.SS_ENTRY_RSVD;

/** Index into the level-`level` table for input (hi, lo). */
function levelIndex(level: number, hi: number, lo: number): number {
  switch (level) {
    case 1:
      return (lo >>> 12) & 511;
    case 2:
      return (lo >>> 21) & 511;
    case 3:
      return ((lo >>> 30) | (hi << 2)) & 511;
    case 4:
      return (hi >>> 7) & 511;
    default:
      return (hi >>> 16) & 511;
  }
}

/** Low-word mask of a leaf's output address at a level (bits 31:12, 31:21, 31:30). */
function leafMaskLo(level: number): number {
  return level === 1 ? 0xfffff000 | 0 : level === 2 ? 0xffe00000 | 0 : 0xc0000000 | 0;
}

/** Mask of the address-field bits 51:width within an entry's high word. */
function rsvdAbove(width: number): number {
  return width >= 52 ? 0 : (0xfffff & ~((1 << (width - 32)) - 1)) | 0;
}

export interface WalkerConfig {
  /** Host address width: address bits at or above it in an entry are reserved. */
  haw: number;
  /** CAP.MGAW: guest address width, the limit for GPAs held in nested first-stage entries. */
  mgaw: number;
  /** CAP.FL1GP. */
  fl1gp: boolean;
  /** CAP.SLLPS (bit 0: 2 MiB, bit 1: 1 GiB). */
  sllps: number;
}

export class Walker {
  // ---- second-stage walk outputs
  ssPfn = 0;
  ssPerm = 0;
  ssShift = 12;
  // ---- first-stage walk outputs (GPA when nested, HPA otherwise)
  outHi = 0;
  outLo = 0;
  /** bit 0 R/W, bit 1 U/S, bit 2 XD (accumulated over all levels). */
  fsAcc = 0;
  fsShift = 12;
  /** The leaf's D bit is set (or was just set): an IOTLB entry may then serve writes. */
  fsLeafDirty = false;

  private readonly hawRsvdHi: number;
  private readonly mgawRsvdHi: number;
  private readonly fl1gp: boolean;
  private readonly sllps: number;
  // A/D bookkeeping for the first-stage entries of the current walk (≤ 5 levels)
  private readonly adPfn = new Float64Array(5);
  private readonly adIdx = new Int32Array(5);
  private readonly adLo = new Int32Array(5);
  private readonly adSsPerm = new Uint8Array(5);
  private adCount = 0;

  constructor(
    private readonly mem: PhysicalMemory,
    cfg: WalkerConfig,
    private readonly fsPwc: FsPwc,
    private readonly ssPwc: SsPwc,
  ) {
    // bits 51:haw of an address field live in hi bits (51−32):(haw−32)
    this.hawRsvdHi = rsvdAbove(cfg.haw);
    this.mgawRsvdHi = rsvdAbove(cfg.mgaw);
    this.fl1gp = cfg.fl1gp;
    this.sllps = cfg.sllps;
  }

  /** Is a host-physical address (hi word) beyond HAW? */
  beyondHaw(hi: number): boolean {
    return (hi & (this.hawRsvdHi | 0xfff00000)) !== 0;
  }

  // ==== second stage ===========================================================================

  /**
   * Translate a GPA (hi, lo) through the second stage rooted at frame `rootPfn` with `levels` levels.
   * On SS_OK: `ssPfn` = output 4 KiB frame, `ssPerm` = R/W/X (bits 0/1/2) ANDed over the levels,
   * `ssShift` = leaf page size. A/D (with SSADE): A on every entry, D on the leaf when `write` and
   * the leaf grants W.
   */
  ssWalk(did: number, rootPfn: number, levels: number, ssade: boolean, hi: number, lo: number, write: boolean): number {
    // the input must fit the AGAW: 39/48/57 bits
    if (hi >>> (levels * 9 - 20) !== 0) return SS_BEYOND_AW;
    const mem = this.mem;
    let tablePfn = rootPfn;
    let perm = 7;
    let level = levels;
    const pwc = this.ssPwc;
    if (pwc.capacity !== 0 && pwc.size !== 0) {
      for (let l = 2; l <= levels; l++) {
        const id = pwc.find(did, l, hi, lo);
        if (id >= 0) {
          tablePfn = pwc.nextPfn[id]!;
          perm = pwc.acc[id]!;
          level = l - 1;
          break;
        }
      }
    }
    for (;;) {
      const idx = levelIndex(level, hi, lo);
      let e = mem.fetch(tablePfn, idx);
      const eh = mem.hi;
      if ((e & 3) === 0) return SS_NOT_PRESENT; // R = W = 0: not present (linux dma_pte_present)
      if ((eh & this.hawRsvdHi) !== 0) return SS_RSVD;
      perm &= e & 7;
      const isLeaf = level === 1 || (e & PS) !== 0;
      if (isLeaf && level > 1) {
        // PS at level 2 needs SLLPS bit 0, at level 3 bit 1; above level 3 PS is reserved
        if (level > 3 || ((this.sllps >>> (level - 2)) & 1) === 0) return SS_RSVD;
      }
      if (ssade && (e & SS_A) === 0) {
        e |= SS_A;
        mem.update(tablePfn, idx, e);
      }
      const nextPfn = (eh & 0xfffff) * 1048576 + (e >>> 12);
      if (isLeaf) {
        if (ssade && write && (e & 2) !== 0 && (e & SS_D) === 0) mem.update(tablePfn, idx, e | SS_D);
        // 4 KiB frame inside the leaf page: the input bits below the page size
        this.ssPfn = level === 1 ? nextPfn : level === 2 ? nextPfn - (nextPfn % 512) + ((lo >>> 12) & 511) : nextPfn - (nextPfn % 262144) + ((lo >>> 12) & 0x3ffff);
        this.ssPerm = perm;
        this.ssShift = 3 + 9 * level;
        return SS_OK;
      }
      if (pwc.capacity !== 0) pwc.fill(did, level, hi, lo, nextPfn, perm);
      tablePfn = nextPfn;
      level--;
    }
  }

  /**
   * A second-stage-only translation of (hi, lo) for `access`. Returns 0 or a fault reason; on success
   * `ssPfn`/`ssPerm`/`ssShift` hold the result.
   */
  translateSecondStage(did: number, rootPfn: number, levels: number, ssade: boolean, hi: number, lo: number, access: number): number {
    const write = (access & 2) !== 0;
    const s = this.ssWalk(did, rootPfn, levels, ssade, hi, lo, write);
    return this.dataFault(s, access);
  }

  /** Map a second-stage outcome for a data access (not a table fetch) to a fault reason. */
  private dataFault(s: number, access: number): number {
    const write = (access & 2) !== 0;
    if (s === SS_BEYOND_AW) return FR_ADDR_BEYOND_MAX;
    if (s === SS_RSVD) return FR_SS_ENTRY_RSVD;
    // A not-present second-stage entry denies the access (QEMU returns the legacy read/write
    // reasons here; these are their scalable-mode counterparts).
    if (s === SS_NOT_PRESENT) return write ? FR_SM_WRITE : FR_SM_READ;
    if (write) {
      if ((this.ssPerm & 2) === 0) return FR_SM_WRITE;
    } else if ((this.ssPerm & 1) === 0) return FR_SM_READ;
    return 0;
  }

  // ==== first stage, optionally nested ==========================================================

  /**
   * Walk the first stage for input (hi, lo). Non-nested: `rootHi/rootLo` is a host-physical root.
   * Nested: it is a GPA, and every table pointer is translated through the second stage
   * (`ssRootPfn`, `ssLevels`) before the entry is read.
   *
   * Returns 0 or a fault reason. On success `outHi/outLo` is the first-stage output (GPA when nested),
   * `fsAcc` the accumulated R/W, U/S, XD, and `fsShift` the leaf page size. A and D are written back
   * (D only for writes), through the second stage when nested.
   */
  walkFirstStage(
    did: number,
    pasid: number,
    rootHi: number,
    rootLo: number,
    fsLevels: number,
    nested: boolean,
    ssRootPfn: number,
    ssLevels: number,
    ssade: boolean,
    wpe: boolean,
    hi: number,
    lo: number,
    access: number,
  ): number {
    // canonical input: bits 63:47 (4-level) or 63:56 (5-level) all equal (SNG.1)
    const top = fsLevels === 4 ? hi >> 15 : hi >> 24;
    if (top !== 0 && top !== -1) return FR_FS_NON_CANONICAL;

    const mem = this.mem;
    let tHi = rootHi;
    let tLo = rootLo;
    let tablePfn = -1; // host frame of the current table when already known
    let tableSsPerm = 0xff;
    let acc = 7; // R/W, U/S, not-XD (bit 2 = "executable")
    let level = fsLevels;
    this.adCount = 0;

    const pwc = this.fsPwc;
    if (pwc.capacity !== 0 && pwc.size !== 0) {
      for (let l = 2; l <= fsLevels; l++) {
        const id = pwc.find(did, pasid, l, hi, lo);
        if (id >= 0) {
          tablePfn = pwc.nextPfn[id]!;
          tableSsPerm = pwc.nextSsPerm[id]!;
          acc = pwc.acc[id]!;
          level = l - 1;
          break;
        }
      }
    }

    let e = 0;
    let eh = 0;
    for (;;) {
      if (tablePfn < 0) {
        if (nested) {
          const s = this.ssWalk(did, ssRootPfn, ssLevels, ssade, tHi, tLo, false);
          if (s !== SS_OK || (this.ssPerm & 1) === 0) {
            if (s === SS_BEYOND_AW) return level === fsLevels ? FR_FS_PTPTR_INV : FR_NESTED_FS_ENTRY_BEYOND_AW;
            if (s === SS_RSVD) return FR_SS_ENTRY_RSVD;
            return level === fsLevels ? FR_NESTED_FS_ROOT_READ : FR_NESTED_FS_ENTRY_READ;
          }
          tablePfn = this.ssPfn;
          tableSsPerm = this.ssPerm;
        } else {
          tablePfn = (tHi & 0xfffff) * 1048576 + (tLo >>> 12);
        }
      }
      const idx = levelIndex(level, hi, lo);
      e = mem.fetch(tablePfn, idx);
      eh = mem.hi;
      if ((e & 1) === 0) return FR_FS_ENTRY_P;
      // address bits above HAW are reserved; nested entries hold GPAs, checked against MGAW (dmar.c 0x74)
      if (nested) {
        if ((eh & this.mgawRsvdHi) !== 0) return FR_NESTED_FS_ENTRY_BEYOND_AW;
      } else if ((eh & this.hawRsvdHi) !== 0) return FR_FS_ENTRY_RSVD;
      // R/W and U/S are ANDed over the levels; XD is ORed (kept inverted in bit 2)
      acc &= ((e >>> 1) & 3) | (~eh >>> 29 & 4);
      const n = this.adCount++;
      this.adPfn[n] = tablePfn;
      this.adIdx[n] = idx;
      this.adLo[n] = e;
      this.adSsPerm[n] = tableSsPerm;
      if (level === 1) break;
      if ((e & PS) !== 0) {
        // PS: 2 MiB at level 2 always; 1 GiB at level 3 with CAP.FL1GP; reserved above
        if (level > 3 || (level === 3 && !this.fl1gp)) return FR_FS_ENTRY_RSVD;
        break;
      }
      tHi = eh & 0xfffff;
      tLo = e & (0xfffff000 | 0);
      if (pwc.capacity !== 0) {
        // the combined (nested) entry caches the next table's host frame, needing one more SS walk
        let nextPfn: number;
        let nextPerm = 0xff;
        if (nested) {
          if (this.ssWalk(did, ssRootPfn, ssLevels, ssade, tHi, tLo, false) !== SS_OK || (this.ssPerm & 1) === 0) {
            tablePfn = -1;
            level--;
            continue;
          }
          nextPfn = this.ssPfn;
          nextPerm = this.ssPerm;
          tablePfn = nextPfn;
          tableSsPerm = nextPerm;
        } else {
          nextPfn = (tHi & 0xfffff) * 1048576 + (tLo >>> 12);
          tablePfn = nextPfn;
        }
        pwc.fill(did, pasid, level, hi, lo, nested, nextPfn, nextPerm, acc);
      } else {
        tablePfn = -1;
      }
      level--;
    }

    // permission checks (first-stage rules; the supervisor/SRE check is done by the caller)
    const supervisor = (access & 8) !== 0;
    if (!supervisor && (acc & 2) === 0) return FR_FS_US;
    const write = (access & 2) !== 0;
    if (write && (acc & 1) === 0 && (!supervisor || wpe)) return FR_SM_WRITE;
    if ((access & 4) !== 0 && (acc & 4) === 0) return FR_FS_XD;

    // A on every level, D on the leaf for writes (qemu vtd_iova_to_flpte's write-back)
    const last = this.adCount - 1;
    for (let i = 0; i <= last; i++) {
      const old = this.adLo[i]!;
      const want = old | FS_A | (i === last && write ? FS_D : 0);
      if (want !== old) {
        if (nested && (this.adSsPerm[i]! & 2) === 0) return FR_NESTED_FS_ENTRY_WRITE;
        mem.update(this.adPfn[i]!, this.adIdx[i]!, want);
      }
    }
    this.fsLeafDirty = write || (e & FS_D) !== 0;

    const mask = leafMaskLo(level);
    this.outLo = (e & mask) | (lo & ~mask);
    this.outHi = eh & 0xfffff;
    this.fsAcc = acc;
    this.fsShift = 3 + 9 * level;
    return 0;
  }

  /** After a nested first-stage walk: translate its GPA output for the data access. */
  nestedOutput(did: number, ssRootPfn: number, ssLevels: number, ssade: boolean, access: number): number {
    const write = (access & 2) !== 0;
    const s = this.ssWalk(did, ssRootPfn, ssLevels, ssade, this.outHi, this.outLo, write);
    return this.dataFault(s, access);
  }
}
