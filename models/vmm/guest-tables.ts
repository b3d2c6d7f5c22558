/**
 * The VMM reading the guest's translation structures in guest RAM, as QEMU's vIOMMU does
 * (vtd_dev_to_context_entry, vtd_ce_get_pasid_entry, vtd_dev_get_pe_from_pasid): root table from
 * the latched RTADDR, the scalable-mode context entry of a guest requester id, its PASID directory
 * and the 512-bit PASID entry. Cold path: only PASID-cache and context-cache invalidations come here.
 */
import type { PhysicalMemory } from '../hw/memory.ts';
import {
  contextEntryAddressFor,
  decodePasidEntry,
  pasidDirEntries,
  pasidEntryAddressFor,
  presentPasidEntries,
  readContextEntryAt,
  readPasidEntryWordsAt,
  type PasidEntry,
} from '../hw/vtd/tables.ts';
import type { Vtd } from '../hw/vtd/vtd.ts';

export interface GuestPasidEntry {
  readonly words: Int32Array;
  readonly entry: PasidEntry;
}

/** The context entry's PASID directory for `sid`: [dir GPA, number of PASIDs], or null. */
function pasidDirOf(vtd: Vtd, mem: PhysicalMemory, sid: number): { dir: number; pasids: number } | null {
  if (!vtd.scalableMode || vtd.rootTableAddress === 0) return null;
  const at = contextEntryAddressFor(mem, vtd.rootTableAddress, sid);
  if (at < 0) return null;
  const ce = readContextEntryAt(mem, at);
  if (!ce.present || !ce.paside) return null;
  return { dir: ce.pasidDirPtr, pasids: pasidDirEntries(ce.pdts) * 64 };
}

/**
 * vtd_dev_get_pe_from_pasid: the guest's entry for (sid, pasid), or null when none is reachable or
 * the entry is not present (the callers treat both alike; a sync reads many absent entries).
 */
export function guestPasidEntry(vtd: Vtd, mem: PhysicalMemory, sid: number, pasid: number): GuestPasidEntry | null {
  const d = pasidDirOf(vtd, mem, sid);
  if (!d || pasid >= d.pasids) return null;
  const at = pasidEntryAddressFor(mem, d.dir, pasid);
  if (at < 0 || (mem.readU32(at) & 1) === 0) return null;
  const words = readPasidEntryWordsAt(mem, at);
  return { words, entry: decodePasidEntry(words) };
}

/** Every PASID of `sid` whose guest entry is present (a walk of the directory: DSI / global sync). */
export function presentGuestPasids(vtd: Vtd, mem: PhysicalMemory, sid: number): number[] {
  const d = pasidDirOf(vtd, mem, sid);
  if (!d) return [];
  return presentPasidEntries(mem, d.dir, d.pasids / 64).map((e) => e.pasid);
}

export function sameEntry(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
