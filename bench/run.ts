/**
 * `npm run bench [-- NAME… [--json]]`: runs the tinybench scripts in bench/ as plain tsx scripts
 * (not vitest bench, whose bundled tinybench differs). With no name, runs them all.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const all = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.slice(0, -3))
  .sort();

const args = process.argv.slice(2);
const json = args.includes('--json');
const names = args.filter((a) => !a.startsWith('--'));
const unknown = names.filter((n) => !all.includes(n));
if (unknown.length) {
  console.error(`bench: unknown benchmark ${unknown.join(', ')}; available: ${all.join(', ')}`);
  process.exit(2);
}
for (const name of names.length ? names : all) {
  const mod = (await import(pathToFileURL(join(here, `${name}.ts`)).href)) as {
    run: (opts: { json: boolean }) => Promise<void>;
  };
  await mod.run({ json });
}
