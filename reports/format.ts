/** Number formatting shared by the renderers. */
import type { MetricUnit } from './figures.ts';

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** ns shown as ns below 10 µs, as µs below 10 ms, else ms */
export function fmtNs(ns: number): string {
  const a = Math.abs(ns);
  if (a < 10_000) return `${fmtNum(ns, 1)} ns`;
  if (a < 10_000_000) return `${fmtNum(ns / 1000, 2)} us`;
  return `${fmtNum(ns / 1e6, 3)} ms`;
}

/** one formatter per precision: toLocaleString builds a new Intl.NumberFormat on every call */
const formatters = new Map<number, Intl.NumberFormat>();

export function fmtNum(n: number, digits: number): string {
  let f = formatters.get(digits);
  if (!f) formatters.set(digits, (f = new Intl.NumberFormat('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })));
  return f.format(n);
}

export function fmtPercent(fraction: number): string {
  return `${fmtNum(fraction * 100, 1)}%`;
}

export function fmtValue(n: number | null, unit: MetricUnit): string {
  if (n === null) return '-';
  switch (unit) {
    case 'ns':
      return fmtNs(n);
    case 'bytes':
      return `${fmtInt(n)} B`;
    case 'depth':
      return n < 0 ? 'none' : String(n);
    case 'count':
      return fmtInt(n);
  }
}

/** a price: ns, or ns per byte */
export function fmtPrice(n: number, perByte: boolean): string {
  return perByte ? `${fmtNum(n, 4)} ns/B` : `${fmtNum(n, 2)} ns`;
}
