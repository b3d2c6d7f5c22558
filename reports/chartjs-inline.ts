/**
 * chart.js's UMD bundle, for inlining into a self-contained page. chart.js's `exports` map hides
 * dist/, so the file is found through the CommonJS entry. The bundle's licence comments name two
 * web addresses; their scheme is dropped so the page holds no external URL (the notices stay).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

let cached: string | undefined;

export function chartJsUmd(): string {
  if (cached !== undefined) return cached;
  const dist = dirname(createRequire(import.meta.url).resolve('chart.js'));
  const umd = readFileSync(join(dist, 'chart.umd.min.js'), 'utf8');
  const cleaned = umd.replace(/\/\*![\s\S]*?\*\//g, (comment) => comment.replace(/https?:\/\//g, ''));
  if (/<\/script/i.test(cleaned)) throw new Error('chart.umd.min.js contains "</script": cannot inline it');
  return (cached = cleaned);
}
