/**
 * Scalable-mode translation structures in memory: root table, context entries (256-bit), the PASID
 * directory and PASID tables, and the 512-bit PASID entry. Encoders and decoders for each, shared by
 * drivers (later kernel models write entries through these) and tests.
 *
 * Entries are arrays of 32-bit words, word 0 = bits 31:0 (so bit n is word n>>5, bit n&31).
 * Addresses are numbers (< 2^53; a nested FLPTR is a GPA up to 57 bits, always 4 KiB aligned,
 * which a double holds exactly).
 */
import type { PhysicalMemory } from '../memory.ts';

const TWO_POW_32 = 4294967296;

/** Low 32 bits of a page-aligned address field (bits 31:12), as int32. */
function addrLo(a: number): number {
  return (a % TWO_POW_32) & ~0xfff;
}
/** Bits 63:32 of an address. */
function addrHi(a: number): number {
  return Math.floor(a / TWO_POW_32) | 0;
}
/** The page-aligned address held in bits 63:12 of a qword. */
function addrOf(lo: number, hi: number): number {
  return (hi >>> 0) * TWO_POW_32 + ((lo & ~0xfff) >>> 0);
}
const b = (v: boolean, n: number): number => (v ? 1 << n : 0);
const on = (w: number, n: number): boolean => ((w >>> n) & 1) === 1;

/** A page allocator: returns the physical address of a fresh zeroed 4 KiB page. */
export type PageAllocator = () => number;

// ---- root entry (128 bits; vtd-model §A.1) ---------------------------------------------------

export const ROOT_ENTRY_SIZE = 16;

export interface RootEntry {
  /** LP, bit 0: lower context table (devfn 0–127) present. */
  lowerPresent: boolean;
  /** LCTP, bits 63:12. */
  lowerCtp: number;
  /** UP, bit 64: upper context table (devfn 128–255) present (qemu vtd_root_entry_present uses re->hi). */
  upperPresent: boolean;
  /** UCTP, bits 127:76. */
  upperCtp: number;
}

export function encodeRootEntry(e: RootEntry): Int32Array {
  return Int32Array.of(
    addrLo(e.lowerCtp) | b(e.lowerPresent, 0),
    addrHi(e.lowerCtp),
    addrLo(e.upperCtp) | b(e.upperPresent, 0),
    addrHi(e.upperCtp),
  );
}

export function decodeRootEntry(w: ArrayLike<number>): RootEntry {
  return {
    lowerPresent: on(w[0]!, 0),
    lowerCtp: addrOf(w[0]!, w[1]!),
    upperPresent: on(w[2]!, 0),
    upperCtp: addrOf(w[2]!, w[3]!),
  };
}

// ---- scalable-mode context entry (256 bits; §A.2; linux pasid.h, iommu.c context_set_sm_*) -----

export const SM_CONTEXT_ENTRY_SIZE = 32;

export interface ContextEntry {
  /** P, bit 0. */
  present: boolean;
  /** FPD, bit 1: fault processing disable. */
  fpd: boolean;
  /** DTE, bit 2: device-TLB (ATS) enable. */
  dte: boolean;
  /** PASIDE, bit 3 (linux CONTEXT_PASIDE). */
  paside: boolean;
  /** PRE, bit 4: page-request enable. */
  pre: boolean;
  /** PDTS, bits 11:9: the PASID directory has 2^(PDTS+7) entries (linux get_pasid_dir_size). */
  pdts: number;
  /** PASIDDIRPTR, bits 63:12: host-physical. */
  pasidDirPtr: number;
  /** RID_PASID, bits 83:64: PASID used for requests without PASID (Linux: IOMMU_NO_PASID = 0). */
  ridPasid: number;
}

export function encodeContextEntry(e: ContextEntry): Int32Array {
  const w = new Int32Array(8);
  w[0] =
    addrLo(e.pasidDirPtr) | b(e.present, 0) | b(e.fpd, 1) | b(e.dte, 2) | b(e.paside, 3) | b(e.pre, 4) | ((e.pdts & 7) << 9);
  w[1] = addrHi(e.pasidDirPtr);
  w[2] = e.ridPasid & 0xfffff;
  return w;
}

export function decodeContextEntry(w: ArrayLike<number>): ContextEntry {
  const lo = w[0]!;
  return {
    present: on(lo, 0),
    fpd: on(lo, 1),
    dte: on(lo, 2),
    paside: on(lo, 3),
    pre: on(lo, 4),
    pdts: (lo >>> 9) & 7,
    pasidDirPtr: addrOf(lo, w[1]!),
    ridPasid: w[2]! & 0xfffff,
  };
}

/** PASID directory entries a context entry provides (2^(PDTS+7)); each covers 64 PASIDs. */
export function pasidDirEntries(pdts: number): number {
  return 1 << (pdts + 7);
}

/** Reserved bits in context qword 0 (bits 8:5) and qword 1 above RID_PASID/RID_PRIV (qemu RSVD_VAL0/VAL1). */
export function contextEntryReservedSet(w: ArrayLike<number>): boolean {
  return (w[0]! & 0x1e0) !== 0 || (w[2]! & ~0x1fffff) !== 0 || w[3] !== 0;
}

// ---- PASID directory entry (64 bits; §A.3, linux pasid.h PASID_PTE_PRESENT/PDE_PFN_MASK) ------

export const PASID_DIR_ENTRY_SIZE = 8;
/** PASID[19:6] indexes the directory, PASID[5:0] the 64-entry table (linux PASID_PDE_SHIFT 6). */
export const PASID_PDE_SHIFT = 6;
export const PASID_MAX = 0x100000;

export interface PasidDirEntry {
  present: boolean;
  fpd: boolean;
  /** PASIDPTR, bits 63:12: host-physical address of a 64-entry PASID table. */
  pasidTablePtr: number;
}

export function encodePasidDirEntry(e: PasidDirEntry): Int32Array {
  return Int32Array.of(addrLo(e.pasidTablePtr) | b(e.present, 0) | b(e.fpd, 1), addrHi(e.pasidTablePtr));
}

export function decodePasidDirEntry(w: ArrayLike<number>): PasidDirEntry {
  return { present: on(w[0]!, 0), fpd: on(w[0]!, 1), pasidTablePtr: addrOf(w[0]!, w[1]!) };
}

// ---- PASID table entry (512 bits; §A.4, linux pasid.h pasid_set_*) ----------------------------

export const PASID_ENTRY_SIZE = 64;

/** PGTT, bits 8:6 (linux PASID_ENTRY_PGTT_*). */
export const PGTT = Object.freeze({ FS: 1, SS: 2, NESTED: 3, PT: 4 });
export const PGTT_NAMES: Readonly<Record<number, string>> = { 1: 'first-stage', 2: 'second-stage', 3: 'nested', 4: 'pass-through' };

export interface PasidEntry {
  /** P, bit 0. */
  present: boolean;
  /** FPD, bit 1. */
  fpd: boolean;
  /** AW, bits 4:2: second-stage AGAW (1 = 39-bit/3-level, 2 = 48/4, 3 = 57/5). */
  aw: number;
  /** SLEE, bit 5: second-stage execute enable. [R: position not seen in code] */
  slee: boolean;
  /** PGTT, bits 8:6. */
  pgtt: number;
  /** SSADE, bit 9: second-stage A/D enable (linux pasid_set_ssade). */
  ssade: boolean;
  /** SLPTPTR, bits 63:12: second-stage root, host-physical. */
  slptptr: number;
  /** DID, bits 79:64 (linux pasid_set_domain_id). */
  did: number;
  /** PWSNP, bit 87 (linux pasid_set_page_snoop: val[1] bit 23). */
  pwsnp: boolean;
  /** PGSNP, bit 88 (linux pasid_set_pgsnp: val[1] bit 24). */
  pgsnp: boolean;
  /** SRE, bit 128 (linux pasid_set_sre). */
  sre: boolean;
  /** ERE, bit 129: execute requests enable. [R: position not seen in code] */
  ere: boolean;
  /** FLPM, bits 131:130: 0 = 4-level, 1 = 5-level (linux pasid_set_flpm). */
  flpm: number;
  /** WPE, bit 132 (linux pasid_set_wpe). */
  wpe: boolean;
  /** EAFE, bit 135 (linux pasid_set_eafe). */
  eafe: boolean;
  /** FLPTR, bits 191:140: first-stage root. A GPA when PGTT = nested, otherwise host-physical. */
  flptr: number;
}

export function emptyPasidEntry(): PasidEntry {
  return {
    present: false, fpd: false, aw: 0, slee: false, pgtt: 0, ssade: false, slptptr: 0, did: 0,
    pwsnp: false, pgsnp: false, sre: false, ere: false, flpm: 0, wpe: false, eafe: false, flptr: 0,
  };
}

export function encodePasidEntry(e: PasidEntry): Int32Array {
  const w = new Int32Array(16);
  w[0] =
    addrLo(e.slptptr) | b(e.present, 0) | b(e.fpd, 1) | ((e.aw & 7) << 2) | b(e.slee, 5) | ((e.pgtt & 7) << 6) | b(e.ssade, 9);
  w[1] = addrHi(e.slptptr);
  w[2] = (e.did & 0xffff) | b(e.pwsnp, 23) | b(e.pgsnp, 24);
  w[4] = addrLo(e.flptr) | b(e.sre, 0) | b(e.ere, 1) | ((e.flpm & 3) << 2) | b(e.wpe, 4) | b(e.eafe, 7);
  w[5] = addrHi(e.flptr);
  return w;
}

export function decodePasidEntry(w: ArrayLike<number>): PasidEntry {
  const q0 = w[0]!;
  const q2 = w[4]!;
  return {
    present: on(q0, 0),
    fpd: on(q0, 1),
    aw: (q0 >>> 2) & 7,
    slee: on(q0, 5),
    pgtt: (q0 >>> 6) & 7,
    ssade: on(q0, 9),
    slptptr: addrOf(q0, w[1]!),
    did: w[2]! & 0xffff,
    pwsnp: on(w[2]!, 23),
    pgsnp: on(w[2]!, 24),
    sre: on(q2, 0),
    ere: on(q2, 1),
    flpm: (q2 >>> 2) & 3,
    wpe: on(q2, 4),
    eafe: on(q2, 7),
    flptr: addrOf(q2, w[5]!),
  };
}

/** Reserved bits in qwords 3..7 (bits 511:192). */
export function pasidEntryReservedSet(w: ArrayLike<number>): boolean {
  for (let i = 6; i < 16; i++) if (w[i] !== 0) return true;
  return false;
}

// ---- writing structures into memory ------------------------------------------------------------

function writeWords(mem: PhysicalMemory, pa: number, w: ArrayLike<number>): void {
  for (let i = 0; i < w.length; i += 2) mem.writeQword(pa + i * 4, w[i]!, w[i + 1]!);
}

function readWords(mem: PhysicalMemory, pa: number, n: number, into = new Int32Array(n)): Int32Array {
  for (let i = 0; i < n; i += 2) {
    into[i] = mem.readQword(pa + i * 4);
    into[i + 1] = mem.hi;
  }
  return into;
}

/** where read-and-decode helpers read: the decoders copy every field out, so nothing keeps it */
const scratch = new Int32Array(16);

export function rootEntryAddress(rootTable: number, bus: number): number {
  return rootTable + (bus & 0xff) * ROOT_ENTRY_SIZE;
}
/** devfn 0–127 in the lower half table, 128–255 in the upper (qemu VTD_DEVFN_CHECK_MASK 0x80). */
export function contextEntryAddress(contextTable: number, devfn: number): number {
  return contextTable + (devfn & 0x7f) * SM_CONTEXT_ENTRY_SIZE;
}
export function pasidDirEntryAddress(dir: number, pasid: number): number {
  return dir + (pasid >>> PASID_PDE_SHIFT) * PASID_DIR_ENTRY_SIZE;
}
export function pasidEntryAddress(table: number, pasid: number): number {
  return table + (pasid & 0x3f) * PASID_ENTRY_SIZE;
}

export function readRootEntry(mem: PhysicalMemory, rootTable: number, bus: number): RootEntry {
  return decodeRootEntry(readWords(mem, rootEntryAddress(rootTable, bus), 4, scratch));
}
export function writeRootEntry(mem: PhysicalMemory, rootTable: number, bus: number, e: RootEntry): void {
  writeWords(mem, rootEntryAddress(rootTable, bus), encodeRootEntry(e));
}
export function readContextEntryAt(mem: PhysicalMemory, pa: number): ContextEntry {
  return decodeContextEntry(readWords(mem, pa, 8, scratch));
}
export function writeContextEntryAt(mem: PhysicalMemory, pa: number, e: ContextEntry): void {
  writeWords(mem, pa, encodeContextEntry(e));
}
export function readPasidDirEntryAt(mem: PhysicalMemory, pa: number): PasidDirEntry {
  return decodePasidDirEntry(readWords(mem, pa, 2, scratch));
}
export function writePasidDirEntryAt(mem: PhysicalMemory, pa: number, e: PasidDirEntry): void {
  writeWords(mem, pa, encodePasidDirEntry(e));
}
export function readPasidEntryAt(mem: PhysicalMemory, pa: number): PasidEntry {
  return decodePasidEntry(readWords(mem, pa, 16, scratch));
}
export function readPasidEntryWordsAt(mem: PhysicalMemory, pa: number): Int32Array {
  return readWords(mem, pa, 16);
}

/**
 * The present entries of a PASID directory of `nDir` entries, PASID order: each PASID with its
 * entry's address. Read with the CPU accessors (no walk counters move); a page of the directory
 * that was never written (512 entries; a 20-bit directory has 16 K) is skipped whole, and entries
 * are decoded only when their P bit is set.
 */
export function presentPasidEntries(mem: PhysicalMemory, dir: number, nDir: number): { pasid: number; at: number }[] {
  const out: { pasid: number; at: number }[] = [];
  for (let d = 0; d < nDir; d++) {
    const pdeAt = dir + d * PASID_DIR_ENTRY_SIZE;
    if (pdeAt % 4096 === 0 && !mem.holdsData(pdeAt)) {
      d += 511;
      continue;
    }
    if ((mem.readU32(pdeAt) & 1) === 0) continue;
    const table = readPasidDirEntryAt(mem, pdeAt).pasidTablePtr;
    for (let i = 0; i < 64; i++) {
      const at = pasidEntryAddress(table, i);
      if ((mem.readU32(at) & 1) !== 0) out.push({ pasid: d * 64 + i, at });
    }
  }
  return out;
}
export function writePasidEntryAt(mem: PhysicalMemory, pa: number, e: PasidEntry): void {
  writeWords(mem, pa, encodePasidEntry(e));
}

/**
 * The context entry for a requester id, allocating the half context table when `alloc` is given
 * (as iommu_context_addr(..., alloc) does). Returns its address, or -1.
 */
export function contextEntryAddressFor(
  mem: PhysicalMemory,
  rootTable: number,
  sid: number,
  alloc?: PageAllocator,
): number {
  const bus = (sid >>> 8) & 0xff;
  const devfn = sid & 0xff;
  const re = readRootEntry(mem, rootTable, bus);
  const upper = devfn >= 0x80;
  let present = upper ? re.upperPresent : re.lowerPresent;
  let ctp = upper ? re.upperCtp : re.lowerCtp;
  if (!present) {
    if (!alloc) return -1;
    ctp = alloc();
    present = true;
    if (upper) {
      re.upperPresent = true;
      re.upperCtp = ctp;
    } else {
      re.lowerPresent = true;
      re.lowerCtp = ctp;
    }
    writeRootEntry(mem, rootTable, bus, re);
  }
  return contextEntryAddress(ctp, devfn);
}

/**
 * The PASID entry address for `pasid` under directory `dir`, allocating the PASID table lazily when
 * `alloc` is given (Linux allocates leaf tables lazily, pasid.c intel_pasid_get_entry). Returns -1
 * when the table is absent and no allocator was given.
 */
export function pasidEntryAddressFor(mem: PhysicalMemory, dir: number, pasid: number, alloc?: PageAllocator): number {
  const pdeAddr = pasidDirEntryAddress(dir, pasid);
  const pde = readPasidDirEntryAt(mem, pdeAddr);
  if (!pde.present) {
    if (!alloc) return -1;
    pde.pasidTablePtr = alloc();
    pde.present = true;
    writePasidDirEntryAt(mem, pdeAddr, pde);
  }
  return pasidEntryAddress(pde.pasidTablePtr, pasid);
}
