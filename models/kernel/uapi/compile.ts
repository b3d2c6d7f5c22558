/**
 * Straight-line encoders and decoders generated from a struct's layout: the same bytes and the
 * same objects as codec.ts's generic walk, without its per-member dispatch. The codec runs on
 * every modelled ioctl, twice or more; this is where its time went.
 *
 * - The decoder builds the object as one literal per record, members in declaration order (the
 *   order the generic walk inserts them), anonymous members flattened in.
 * - The encoder is a fast path only: it writes what it is sure of and returns false on anything
 *   unusual (an unknown key, a value out of range or of the wrong kind, two members of one
 *   union). codec.ts then zeroes the buffer and runs the generic walk, which writes the same bytes
 *   or throws the error naming the member. Arrays go to the generic writer with their path.
 */
import { SCALAR_NUMBER_RANGES, SCALAR_RANGES, type LaidNode, type LaidRecord, type StructLayout } from './layout.ts';
import type { ScalarType, UapiInput, UapiInputValue, UapiObject, UapiValue } from './types.ts';

/** codec.ts's generic pieces the generated code calls for what it does not inline. */
export interface CodecHelpers {
  writeNode(buf: Uint8Array, at: number, node: LaidNode, v: UapiInputValue, path: string): void;
  readArray(view: DataView, bytes: Uint8Array, at: number, elem: LaidNode, count: number): UapiValue;
  /** member names an object for the record may carry, anonymous members flattened in */
  memberNames(rec: LaidRecord): ReadonlySet<string>;
}

export interface CompiledCodec {
  /** writes the fixed part of `v` into a zeroed `buf`; false: take the generic path instead */
  readonly enc: (buf: Uint8Array, v: UapiInput) => boolean;
  /** the fixed part of a struct from `bytes`, at least the struct's size long */
  readonly dec: (bytes: Uint8Array) => UapiObject;
}

const TWO_POW_32 = 4294967296;

/**
 * Writes an integer of `size` bytes, little-endian two's complement; false when `x` is not an
 * exact integer within [lo, hi] (numbers) or [blo, bhi] (bigints).
 */
export function writeInt(buf: Uint8Array, at: number, size: number, lo: number, hi: number, blo: bigint, bhi: bigint, x: unknown): boolean {
  let low: number;
  let high: number;
  if (typeof x === 'number') {
    if (!Number.isSafeInteger(x) || x < lo || x > hi) return false;
    low = x >>> 0 === x || x < 0 ? x | 0 : x % TWO_POW_32;
    high = size === 8 ? Math.floor(x / TWO_POW_32) | 0 : 0;
  } else if (typeof x === 'bigint') {
    if (x < blo || x > bhi) return false;
    const u = x < 0n ? x + (1n << BigInt(size * 8)) : x;
    low = Number(u & 0xffff_ffffn) | 0;
    high = size === 8 ? Number(u >> 32n) | 0 : 0;
  } else return false;
  buf[at] = low;
  if (size > 1) buf[at + 1] = low >>> 8;
  if (size > 2) {
    buf[at + 2] = low >>> 16;
    buf[at + 3] = low >>> 24;
  }
  if (size === 8) {
    buf[at + 4] = high;
    buf[at + 5] = high >>> 8;
    buf[at + 6] = high >>> 16;
    buf[at + 7] = high >>> 24;
  }
  return true;
}

// a DataView per decode cost more than the decode itself: bytes are read directly, and a 64-bit
// value through one shared 8-byte view
const SCRATCH = new Uint8Array(8);
const SCRATCH_VIEW = new DataView(SCRATCH.buffer);
function r64(bytes: Uint8Array, at: number, signed: boolean): bigint {
  for (let i = 0; i < 8; i++) SCRATCH[i] = bytes[at + i]!;
  return signed ? SCRATCH_VIEW.getBigInt64(0, true) : SCRATCH_VIEW.getBigUint64(0, true);
}

const b = (at: number, i: number): string => `bytes[${at + i}]`;
const u16 = (o: number): string => `(${b(o, 0)} | ${b(o, 1)} << 8)`;
const i32 = (o: number): string => `(${b(o, 0)} | ${b(o, 1)} << 8 | ${b(o, 2)} << 16 | ${b(o, 3)} << 24)`;
const READ: Readonly<Record<ScalarType, (at: number) => string>> = {
  __u8: (o) => b(o, 0),
  char: (o) => b(o, 0),
  __s8: (o) => `(${b(o, 0)} << 24 >> 24)`,
  __u16: u16,
  __s16: (o) => `(${u16(o)} << 16 >> 16)`,
  __u32: (o) => `(${i32(o)} >>> 0)`,
  __s32: i32,
  __u64: (o) => `R64(bytes, ${o}, false)`,
  __aligned_u64: (o) => `R64(bytes, ${o}, false)`,
  __aligned_le64: (o) => `R64(bytes, ${o}, false)`,
  __s64: (o) => `R64(bytes, ${o}, true)`,
};

const key = (name: string): string => JSON.stringify(name);

/** Generated code refers to layout nodes and constants through this table. */
class Consts {
  readonly values: unknown[] = [];
  ref(v: unknown): string {
    let i = this.values.indexOf(v);
    if (i < 0) i = this.values.push(v) - 1;
    return `K[${i}]`;
  }
}

export function compileCodec(lay: StructLayout, h: CodecHelpers): CompiledCodec {
  const k = new Consts();
  let tmp = 0;

  // ---- decode: one object literal per record
  const decRecord = (rec: LaidRecord, at: number): string => `{${decMembers(rec, at).join(', ')}}`;
  const decMembers = (rec: LaidRecord, at: number): string[] => {
    const out: string[] = [];
    for (const f of rec.fields) {
      if (f.node.kind === 'flex') continue;
      if (f.name === undefined) {
        if (f.node.kind === 'record') out.push(...decMembers(f.node, at + f.offset));
        continue;
      }
      out.push(`${key(f.name)}: ${decNode(f.node, at + f.offset)}`);
    }
    return out;
  };
  const decNode = (node: LaidNode, at: number): string => {
    switch (node.kind) {
      case 'scalar':
        return READ[node.type](at);
      case 'record':
        return decRecord(node, at);
      case 'array':
        return `H.readArray(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), bytes, ${at}, ${k.ref(node.elem)}, ${node.count})`;
      case 'flex':
        throw new Error('uapi: flex array in an unexpected place');
    }
  };
  const decSrc = `return ${decRecord(lay.root, 0)};`;

  // ---- encode: checks, then writes; any doubt returns false
  const isObj = (v: string): string => `(typeof ${v} !== 'object' || ${v} === null || Array.isArray(${v}) || ${v} instanceof Uint8Array)`;
  const encRecord = (rec: LaidRecord, at: number, v: string, path: string, checkKeys: boolean): string => {
    let s = `if ${isObj(v)} return false;\n`;
    if (checkKeys) {
      const cases = [...h.memberNames(rec)].map((n) => `case ${key(n)}:`).join(' ');
      s += `for (const k in ${v}) switch (k) { ${cases} break; default: return false; }\n`;
    }
    if (rec.union) {
      const present = rec.fields.map((f) => {
        if (f.name !== undefined) return `(${v}[${key(f.name)}] !== undefined ? 1 : 0)`;
        if (f.node.kind !== 'record') return '0';
        return `(${[...h.memberNames(f.node)].map((n) => `${v}[${key(n)}] !== undefined`).join(' || ') || 'false'} ? 1 : 0)`;
      });
      s += `if (${present.join(' + ') || '0'} > 1) return false;\n`;
    }
    for (const f of rec.fields) s += encField(f.node, f.name, at + f.offset, v, path);
    return s;
  };
  const encField = (node: LaidNode, name: string | undefined, at: number, v: string, path: string): string => {
    if (node.kind === 'flex') return '';
    if (name === undefined) return node.kind === 'record' ? encRecord(node, at, v, path, false) : '';
    const x = `x${tmp++}`;
    const p = `${path}.${name}`;
    let s = `const ${x} = ${v}[${key(name)}];\nif (${x} !== undefined) {\n`;
    switch (node.kind) {
      case 'scalar': {
        const [blo, bhi] = SCALAR_RANGES[node.type];
        const [lo, hi] = SCALAR_NUMBER_RANGES[node.type];
        s += `if (!W(buf, ${at}, ${node.size}, ${lo}, ${hi}, ${k.ref(blo)}, ${k.ref(bhi)}, ${x})) return false;\n`;
        break;
      }
      case 'record':
        s += encRecord(node, at, x, p, true);
        break;
      case 'array':
        s += `H.writeNode(buf, ${at}, ${k.ref(node)}, ${x}, ${key(p)});\n`;
        break;
    }
    return `${s}}\n`;
  };
  const encSrc = `${encRecord(lay.root, 0, 'v', lay.decl.name, true)}return true;`;

  const make = (params: string, body: string): unknown => new Function('K', 'H', 'W', 'R64', `return function (${params}) {\n${body}\n};`)(k.values, h, writeInt, r64);
  return {
    enc: make('buf, v', encSrc) as CompiledCodec['enc'],
    dec: make('bytes', decSrc) as CompiledCodec['dec'],
  };
}
