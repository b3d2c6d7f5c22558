/**
 * The canonical hardware digest (DESIGN principle 7): the architectural meaning of a VT-d unit's
 * state, independent of DIDs, table pages and allocation order.
 *
 * Covered:
 * - per context entry (by requester id): P, FPD, PASIDE, PRE, DTE, the PASID range, RID_PASID;
 * - per present PASID entry: the fields its PGTT consumes (vtd-model §A.4): PGTT, the first-stage
 *   root (a GPA when nested; an owner label when it is host memory), FLPM, SRE, WPE, EAFE, AW, and
 *   the second-stage mapping it designates as a canonical listing GPA → (region, offset) + R/W/X;
 * - fault records (reason, device, PASID, address) and the DMA effects (target as owner label).
 *
 * Not covered: DIDs, table addresses, A/D bits, snoop controls, FPD of PASID entries, cache state.
 * The digest reads memory with the uncounted CPU accessors, so it never moves walk counters.
 */
import { createHash } from 'node:crypto';
import type { PhysicalMemory } from '../memory.ts';
import type { Vtd } from './vtd.ts';
import {
  PGTT,
  PGTT_NAMES,
  contextEntryAddress,
  decodePasidEntry,
  pasidDirEntries,
  presentPasidEntries,
  readContextEntryAt,
  readPasidEntryWordsAt,
  readRootEntry,
} from './tables.ts';
import { faultName } from './faults.ts';

export interface HwDigest {
  /** Canonical JSON (stable key order). */
  readonly json: string;
  /** sha256 of `json`, hex. */
  readonly sha256: string;
  readonly doc: unknown;
}

/** One run of the second-stage mapping: [gpa, size, region, offset, perm], numbers as hex. */
type MappingRun = [string, string, string, string, string];

const hex = (n: number): string => `0x${n.toString(16)}`;

export function computeDigest(vtd: Vtd): HwDigest {
  const mem = vtd.mem;
  const mappings = new Map<string, MappingRun[]>(); // memo: root:levels → listing
  const mappingIds = new Map<string, string>(); // listing hash → listing JSON (for the doc)
  const listingIdFor = (rootPfn: number, levels: number): string => {
    const memoKey = `${rootPfn}:${levels}`;
    let runs = mappings.get(memoKey);
    if (!runs) {
      runs = secondStageListing(mem, rootPfn, levels);
      mappings.set(memoKey, runs);
    }
    const json = JSON.stringify(runs);
    const id = sha(json).slice(0, 16);
    mappingIds.set(id, json);
    return id;
  };

  const devices: unknown[] = [];
  if (vtd.scalableMode) {
    const rt = vtd.rootTableAddress;
    for (let bus = 0; bus < 256; bus++) {
      const re = readRootEntry(mem, rt, bus);
      for (const upper of [false, true]) {
        if (!(upper ? re.upperPresent : re.lowerPresent)) continue;
        const ctp = upper ? re.upperCtp : re.lowerCtp;
        for (let i = 0; i < 128; i++) {
          const devfn = (upper ? 0x80 : 0) | i;
          const ce = readContextEntryAt(mem, contextEntryAddress(ctp, devfn));
          if (!ce.present) continue;
          const sid = (bus << 8) | devfn;
          devices.push({
            sid: bdf(sid),
            context: {
              fpd: ce.fpd,
              paside: ce.paside,
              pre: ce.pre,
              dte: ce.dte,
              pasidLimit: pasidDirEntries(ce.pdts) * 64,
              ridPasid: ce.ridPasid,
            },
            pasids: pasidEntries(vtd, ce.pasidDirPtr, ce.pdts, listingIdFor),
          });
        }
      }
    }
  }

  const doc = {
    translation: vtd.translationEnabled,
    scalableMode: vtd.scalableMode,
    devices,
    secondStageMappings: Object.fromEntries(
      [...mappingIds.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, json]) => [id, JSON.parse(json) as unknown]),
    ),
    // faults and DMA effects as multisets: concurrent requests from different devices may reach
    // the hardware in another order on another stack without meaning anything different
    faults: canonical(
      vtd.faultRecords.map((f) => ({
        reason: hex(f.reason),
        name: faultName(f.reason),
        sid: bdf(f.sid),
        pasid: f.pasid,
        addr: f.addr,
        write: f.write,
      })),
    ),
    dmaEffects: canonical(
      vtd.effects.effects.map((e) => ({
        sid: bdf(e.sid),
        pasid: e.pasid,
        iova: e.iova,
        target: ownerName(mem, e.hpa),
        length: e.length,
        write: e.write,
        data: e.dataHash,
      })),
    ),
  };
  const json = JSON.stringify(doc);
  return { json, sha256: sha(json), doc };
}

/** A list in a stable order that does not depend on arrival order. */
function canonical<T>(xs: T[]): T[] {
  return xs
    .map((x) => [JSON.stringify(x), x] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, x]) => x);
}

function pasidEntries(
  vtd: Vtd,
  dir: number,
  pdts: number,
  listingIdFor: (rootPfn: number, levels: number) => string,
): unknown[] {
  const mem = vtd.mem;
  const out: unknown[] = [];
  for (const { pasid, at } of presentPasidEntries(mem, dir, pasidDirEntries(pdts))) {
    const pe = decodePasidEntry(readPasidEntryWordsAt(mem, at));
    const meaning: Record<string, unknown> = { pasid, pgtt: PGTT_NAMES[pe.pgtt] ?? `invalid(${pe.pgtt})` };
    const usesFs = pe.pgtt === PGTT.FS || pe.pgtt === PGTT.NESTED;
    const usesSs = pe.pgtt === PGTT.SS || pe.pgtt === PGTT.NESTED;
    if (usesFs) {
      meaning.fsRoot = pe.pgtt === PGTT.NESTED ? { gpa: hex(pe.flptr) } : ownerName(mem, pe.flptr);
      meaning.fsLevels = 4 + pe.flpm;
      meaning.sre = pe.sre;
      meaning.wpe = pe.wpe;
      meaning.eafe = pe.eafe;
    }
    if (usesSs || pe.pgtt === PGTT.PT) meaning.aw = pe.aw;
    if (usesSs) meaning.secondStage = listingIdFor(pe.slptptr / 4096, pe.aw + 2);
    out.push(meaning);
  }
  return out;
}

/** Walk a second-stage table and list its leaves as coalesced (region, offset) runs. */
function secondStageListing(mem: PhysicalMemory, rootPfn: number, levels: number): MappingRun[] {
  const runs: MappingRun[] = [];
  let cur: { gpa: number; size: number; region: string; offset: number; perm: string } | null = null;
  const flush = (): void => {
    if (cur) runs.push([hex(cur.gpa), hex(cur.size), cur.region, hex(cur.offset), cur.perm]);
    cur = null;
  };
  const visit = (tablePa: number, level: number, base: number): void => {
    const span = 2 ** (12 + 9 * (level - 1));
    for (let i = 0; i < 512; i++) {
      const lo = mem.readQword(tablePa + i * 8);
      const hi = mem.hi;
      if ((lo & 3) === 0) continue;
      const gpa = base + i * span;
      const addr = (hi & 0xfffff) * 4294967296 + ((lo & ~0xfff) >>> 0);
      if (level === 1 || (lo & 0x80) !== 0) {
        const perm = `${lo & 1 ? 'r' : '-'}${lo & 2 ? 'w' : '-'}${lo & 4 ? 'x' : '-'}`;
        const owner = mem.owner(addr);
        const region = owner?.region ?? 'unlabelled';
        const offset = owner?.offset ?? addr;
        const c = cur as { gpa: number; size: number; region: string; offset: number; perm: string } | null;
        if (c && c.gpa + c.size === gpa && c.region === region && c.offset + c.size === offset && c.perm === perm) {
          c.size += span;
        } else {
          flush();
          cur = { gpa, size: span, region, offset, perm };
        }
      } else {
        visit(addr, level - 1, gpa);
      }
    }
  };
  visit(rootPfn * 4096, levels, 0);
  flush();
  return runs;
}

function ownerName(mem: PhysicalMemory, pa: number): { region: string; offset: string } {
  const o = mem.owner(pa);
  return o ? { region: o.region, offset: hex(o.offset) } : { region: 'unlabelled', offset: hex(pa) };
}

function bdf(sid: number): string {
  const bus = (sid >>> 8) & 0xff;
  const dev = (sid >>> 3) & 0x1f;
  const fn = sid & 7;
  return `${bus.toString(16).padStart(2, '0')}:${dev.toString(16).padStart(2, '0')}.${fn}`;
}

function sha(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
