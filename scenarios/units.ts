/** Sizes, addresses and values as scenario files write them. */

export const PAGE_SIZE = 4096;
/** x86-64 user space with 4-level paging ends here (47 bits) */
export const USER_VA_END = 2 ** 47;
/** the PCIe PASID field is 20 bits wide */
export const MAX_PASID_BITS = 20;

const SUFFIX: Record<string, number> = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };

/** Bytes for `4096`, `4K`, `512M`, `1G` (binary units); undefined for anything else. */
export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+)([KMG])?$/.exec(v);
  if (!m) return undefined;
  const bytes = Number(m[1]) * (m[2] ? SUFFIX[m[2]]! : 1);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** An address: a non-negative safe integer (YAML reads 0x… as a number) or a quoted "0x…" string. */
export function parseAddress(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]+$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** `1 byte`, `4096 bytes`, `16M`: the largest exact binary suffix. */
export function formatSize(n: number): string {
  for (const [suffix, unit] of Object.entries(SUFFIX).reverse()) if (n >= unit && n % unit === 0) return `${n / unit}${suffix}`;
  return n === 1 ? '1 byte' : `${n} bytes`;
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** A value as a message quotes it: strings in quotes, big integers in hex. */
export function show(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'bigint') return `0x${v.toString(16)}`;
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}
