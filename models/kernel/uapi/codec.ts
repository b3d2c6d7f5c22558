/**
 * Byte-exact encode/decode of uAPI structs (x86_64, little-endian).
 *
 * The VMM model uses `encode` to build the bytes it writes into simulated user memory, and the
 * kernel model uses `decode` on what it copied in, so nothing here may truncate silently: unknown
 * members, out-of-range values and wrong array lengths throw an Error naming `struct.member`.
 *
 * - ≤32-bit integers decode to numbers; 64-bit ones to bigint (U64_MAX must survive).
 * - A union decodes to every member's view of the same bytes; encode accepts several members only
 *   when the bytes they produce agree.
 * - Anonymous struct/union members are read and written through the enclosing object (C11).
 * - A trailing flex array encodes from a Uint8Array (raw bytes) or an array of elements, and
 *   decodes `flexCount` elements, or as many whole elements as the remaining bytes hold.
 */
import { compileCodec, writeInt, type CompiledCodec } from './compile.ts';
import { layoutOf, scalarSize, SCALAR_NUMBER_RANGES, SCALAR_RANGES, type LaidNode, type LaidRecord, type LaidField, type StructLayout } from './layout.ts';
import type { ScalarType, StructDecl, UapiInput, UapiInputValue, UapiObject, UapiValue } from './types.ts';

export interface DecodeOptions {
  /** Number of flex-array elements to decode; default: whatever whole elements remain. */
  readonly flexCount?: number;
}

export function encode(decl: StructDecl, value: UapiInput = {}): Uint8Array {
  const lay = layoutOf(decl);
  if (!isObject(value)) throw new Error(`uapi: ${decl.name}: expected an object, got ${describe(value)}`);
  let flexBytes: Uint8Array | undefined;
  if (lay.flex) {
    const v = value[lay.flex.name];
    if (v !== undefined) flexBytes = encodeFlex(lay.flex.elem, v, `${decl.name}.${lay.flex.name}`);
  }
  const total = lay.flex ? Math.max(lay.size, lay.flex.offset + (flexBytes?.length ?? 0)) : lay.size;
  const buf = new Uint8Array(total);
  if (!compiled(lay).enc(buf, value)) {
    // the generic walk writes the same bytes, or throws naming the member at fault
    buf.fill(0);
    writeRecord(buf, 0, lay.root, value, decl.name, true);
  }
  if (lay.flex && flexBytes) buf.set(flexBytes, lay.flex.offset);
  return buf;
}

export function decode(decl: StructDecl, bytes: Uint8Array, opts: DecodeOptions = {}): UapiObject {
  const lay = layoutOf(decl);
  if (bytes.length < lay.size) {
    throw new Error(`uapi: ${decl.name}: need ${lay.size} bytes, got ${bytes.length}`);
  }
  const out = compiled(lay).dec(bytes);
  if (lay.flex) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const { name, offset, elem } = lay.flex;
    const room = Math.floor((bytes.length - offset) / elem.size);
    const count = opts.flexCount ?? room;
    if (!Number.isInteger(count) || count < 0 || count > room) {
      throw new Error(`uapi: ${decl.name}.${name}: ${count} elements do not fit in ${bytes.length} bytes`);
    }
    out[name] = readFlex(view, bytes, offset, elem, count);
  } else if (opts.flexCount !== undefined) {
    throw new Error(`uapi: ${decl.name}: has no flex array, flexCount not allowed`);
  }
  return out;
}

/** encode and decode without the generic walk, generated once per struct (compile.ts) */
const compiledCache = new WeakMap<StructLayout, CompiledCodec>();
function compiled(lay: StructLayout): CompiledCodec {
  let c = compiledCache.get(lay);
  if (!c) compiledCache.set(lay, (c = compileCodec(lay, { writeNode, readArray, memberNames })));
  return c;
}

/** The generic walk alone and the generated code, for tests that hold one to the other. */
export const codecPaths = {
  compiled: (decl: StructDecl): CompiledCodec => compiled(layoutOf(decl)),
  encodeFixed(decl: StructDecl, value: UapiInput, size: number): Uint8Array {
    const buf = new Uint8Array(size);
    writeRecord(buf, 0, layoutOf(decl).root, value, decl.name, true);
    return buf;
  },
  decodeFixed(decl: StructDecl, bytes: Uint8Array): UapiObject {
    return readRecord(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), bytes, 0, layoutOf(decl).root);
  },
};

// ---------------------------------------------------------------- encode

function writeRecord(buf: Uint8Array, at: number, rec: LaidRecord, v: unknown, path: string, checkKeys: boolean): void {
  if (!isObject(v)) throw new Error(`uapi: ${path}: expected an object, got ${describe(v)}`);
  if (checkKeys) {
    const known = memberNames(rec);
    for (const k of Object.keys(v)) {
      if (!known.has(k)) throw new Error(`uapi: ${path}: unknown member "${k}"`);
    }
  }
  if (rec.union) writeUnion(buf, at, rec, v, path);
  else for (const f of rec.fields) writeField(buf, at, f, v, path);
}

function writeField(buf: Uint8Array, at: number, f: LaidField, obj: UapiInput, path: string): void {
  if (f.node.kind === 'flex') return; // written by encode() after the fixed part
  if (f.name === undefined) {
    if (f.node.kind === 'record') writeRecord(buf, at + f.offset, f.node, obj, path, false);
    return;
  }
  const v = obj[f.name];
  if (v === undefined) return;
  // the common case, an integer that fits a scalar, builds no path string
  if (f.node.kind === 'scalar' && writeSmall(buf, at + f.offset, f.node.type, v)) return;
  writeNode(buf, at + f.offset, f.node, v, `${path}.${f.name}`);
}

/** Writes `v` when it is an integer `type` holds (a safe-integer number or a bigint); else false. */
function writeSmall(buf: Uint8Array, at: number, type: ScalarType, v: UapiInputValue): boolean {
  const [lo, hi] = SCALAR_NUMBER_RANGES[type];
  const [blo, bhi] = SCALAR_RANGES[type];
  return writeInt(buf, at, scalarSize(type), lo, hi, blo, bhi, v);
}

function writeUnion(buf: Uint8Array, at: number, rec: LaidRecord, obj: UapiInput, path: string): void {
  const given = rec.fields.filter((f) => isPresent(f, obj));
  if (given.length <= 1) {
    for (const f of given) writeField(buf, at, f, obj, path);
    return;
  }
  // Several views of one union: where two of them define the same byte (padding defines nothing)
  // they must agree.
  const acc = new Uint8Array(rec.size);
  const defined = new Uint8Array(rec.size);
  let covered = 0;
  let coveredBy = '';
  for (const f of given) {
    const scratch = new Uint8Array(rec.size);
    writeField(scratch, 0, f, obj, path);
    const mine = new Uint8Array(rec.size);
    markDefined(mine, 0, f.node);
    const label = f.name ?? `{${[...memberNames(f.node as LaidRecord)].join(',')}}`;
    for (let i = 0; i < f.node.size; i++) {
      if (!mine[i]) continue;
      if (defined[i] && scratch[i] !== acc[i]) {
        throw new Error(`uapi: ${path}: union members ${coveredBy} and ${label} given with conflicting bytes at offset ${i}`);
      }
      acc[i] = scratch[i]!;
      defined[i] = 1;
    }
    covered = Math.max(covered, f.node.size);
    coveredBy = coveredBy ? `${coveredBy}, ${label}` : label;
  }
  buf.set(acc.subarray(0, covered), at);
}

/** Marks the bytes a node's members occupy; padding between and after members stays unmarked. */
function markDefined(mask: Uint8Array, at: number, node: LaidNode): void {
  switch (node.kind) {
    case 'scalar':
      mask.fill(1, at, at + node.size);
      return;
    case 'array':
      for (let i = 0; i < node.count; i++) markDefined(mask, at + i * node.elem.size, node.elem);
      return;
    case 'record':
      for (const f of node.fields) markDefined(mask, at + f.offset, f.node);
      return;
    case 'flex':
      return;
  }
}

function writeNode(buf: Uint8Array, at: number, node: LaidNode, v: UapiInputValue, path: string): void {
  switch (node.kind) {
    case 'scalar':
      if (!writeSmall(buf, at, node.type, v)) scalarError(node.type, v, path);
      return;
    case 'record':
      writeRecord(buf, at, node, v, path, true);
      return;
    case 'array':
      writeArray(buf, at, node.elem, node.count, v, path);
      return;
    case 'flex':
      throw new Error(`uapi: ${path}: flex array in an unexpected place`);
  }
}

function writeArray(buf: Uint8Array, at: number, elem: LaidNode, count: number, v: UapiInputValue, path: string): void {
  const ctype = elem.kind === 'scalar' ? elem.type : undefined;
  if (typeof v === 'string') {
    if (ctype !== 'char') throw new Error(`uapi: ${path}: a string fits only a char array`);
    const bytes = new TextEncoder().encode(v);
    if (bytes.length > count) throw new Error(`uapi: ${path}: string of ${bytes.length} bytes exceeds char[${count}]`);
    buf.set(bytes, at);
    return;
  }
  if (v instanceof Uint8Array) {
    if (ctype !== '__u8' && ctype !== 'char') throw new Error(`uapi: ${path}: raw bytes fit only a __u8/char array`);
    if (v.length !== count) throw new Error(`uapi: ${path}: wrong array length ${v.length}, expected ${count}`);
    buf.set(v, at);
    return;
  }
  if (!Array.isArray(v)) throw new Error(`uapi: ${path}: expected an array of ${count}, got ${describe(v)}`);
  const items: readonly UapiInputValue[] = v;
  if (items.length !== count) throw new Error(`uapi: ${path}: wrong array length ${items.length}, expected ${count}`);
  items.forEach((item, i) => writeNode(buf, at + i * elem.size, elem, item, `${path}[${i}]`));
}

function encodeFlex(elem: LaidNode, v: UapiInputValue, path: string): Uint8Array {
  if (v instanceof Uint8Array) {
    if (v.length % elem.size !== 0) {
      throw new Error(`uapi: ${path}: ${v.length} bytes is not a whole number of ${elem.size}-byte elements`);
    }
    return v.slice();
  }
  if (!Array.isArray(v)) throw new Error(`uapi: ${path}: expected a Uint8Array or an array, got ${describe(v)}`);
  const items: readonly UapiInputValue[] = v;
  const out = new Uint8Array(items.length * elem.size);
  items.forEach((item, i) => writeNode(out, i * elem.size, elem, item, `${path}[${i}]`));
  return out;
}

/** Why `v` does not fit scalar `type`: the error naming the member. */
function scalarError(type: ScalarType, v: UapiInputValue, path: string): never {
  if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new Error(`uapi: ${path}: ${v} is not an exact integer for ${type} (use a bigint)`);
  if (typeof v !== 'number' && typeof v !== 'bigint') throw new Error(`uapi: ${path}: expected an integer for ${type}, got ${describe(v)}`);
  throw new Error(`uapi: ${path}: value ${v} out of range for ${type}`);
}

// ---------------------------------------------------------------- decode

function readRecord(view: DataView, bytes: Uint8Array, at: number, rec: LaidRecord, into: UapiObject = {}): UapiObject {
  for (const f of rec.fields) {
    if (f.node.kind === 'flex') continue; // decode() handles it with the element count
    if (f.name === undefined) {
      if (f.node.kind === 'record') readRecord(view, bytes, at + f.offset, f.node, into);
      continue;
    }
    into[f.name] = readNode(view, bytes, at + f.offset, f.node);
  }
  return into;
}

function readNode(view: DataView, bytes: Uint8Array, at: number, node: LaidNode): UapiValue {
  switch (node.kind) {
    case 'scalar':
      return readScalar(view, at, node.type);
    case 'record':
      return readRecord(view, bytes, at, node);
    case 'array':
      return readArray(view, bytes, at, node.elem, node.count);
    case 'flex':
      throw new Error('uapi: flex array in an unexpected place');
  }
}

function readArray(view: DataView, bytes: Uint8Array, at: number, elem: LaidNode, count: number): UapiValue {
  if (elem.kind === 'scalar' && elem.type === 'char') {
    const raw = bytes.subarray(at, at + count);
    const nul = raw.indexOf(0);
    return new TextDecoder().decode(nul < 0 ? raw : raw.subarray(0, nul));
  }
  if (elem.kind === 'scalar' && elem.type === '__u8') return bytes.slice(at, at + count);
  return Array.from({ length: count }, (_, i) => readNode(view, bytes, at + i * elem.size, elem));
}

function readFlex(view: DataView, bytes: Uint8Array, at: number, elem: LaidNode, count: number): UapiValue {
  if (elem.kind === 'scalar' && elem.type === '__u8') return bytes.slice(at, at + count);
  return Array.from({ length: count }, (_, i) => readNode(view, bytes, at + i * elem.size, elem));
}

function readScalar(view: DataView, at: number, type: ScalarType): number | bigint {
  switch (type) {
    case '__u8':
    case 'char':
      return view.getUint8(at);
    case '__s8':
      return view.getInt8(at);
    case '__u16':
      return view.getUint16(at, true);
    case '__s16':
      return view.getInt16(at, true);
    case '__u32':
      return view.getUint32(at, true);
    case '__s32':
      return view.getInt32(at, true);
    case '__u64':
    case '__aligned_u64':
    case '__aligned_le64':
      return view.getBigUint64(at, true);
    case '__s64':
      return view.getBigInt64(at, true);
  }
}

// ---------------------------------------------------------------- helpers

const namesCache = new WeakMap<LaidRecord, ReadonlySet<string>>();

/** Member names usable on an object for this record, anonymous members flattened in. */
function memberNames(rec: LaidRecord): ReadonlySet<string> {
  const hit = namesCache.get(rec);
  if (hit) return hit;
  const names = new Set<string>();
  for (const f of rec.fields) {
    if (f.name !== undefined) names.add(f.name);
    else if (f.node.kind === 'record') for (const n of memberNames(f.node)) names.add(n);
  }
  namesCache.set(rec, names);
  return names;
}

function isPresent(f: LaidField, obj: UapiInput): boolean {
  if (f.name !== undefined) return obj[f.name] !== undefined;
  if (f.node.kind !== 'record') return false;
  for (const n of memberNames(f.node)) if (obj[n] !== undefined) return true;
  return false;
}

function isObject(v: unknown): v is UapiInput {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof Uint8Array) return `${v.length} raw bytes`;
  return typeof v;
}
