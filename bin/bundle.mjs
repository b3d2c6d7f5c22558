// The CLI as one esbuild bundle, for `npm start`. Loading one bundle instead of transforming ~200
// TypeScript files through tsx saves about a second of start-up here and in every worker thread of
// the suite pool. The bundle lives in dist/<hash>/ (not committed), where <hash> covers every input
// of the build: a start whose sources are unchanged reuses it, and any change builds a new one, so
// it never runs stale sources. `npm ci` builds it once (the `prepare` script runs this file).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const SOURCE_DIRS = ['bin', 'models', 'sim', 'scenarios', 'reports'];
const COMPLETE = 'complete';

/** every file the bundle is made from, with its text */
function inputs() {
  const files = SOURCE_DIRS.flatMap((dir) =>
    readdirSync(`${root}${dir}`, { recursive: true })
      .filter((f) => /\.(ts|mjs|js)$/.test(f))
      .map((f) => `${dir}/${f}`),
  );
  files.push('package-lock.json', 'tsconfig.json');
  return files.sort().map((f) => ({ path: `${root}${f}`, name: f, text: readFileSync(`${root}${f}`, 'utf8') }));
}

async function build(files, out, finalDir) {
  const { build: esbuild } = await import('esbuild');
  // import.meta.url inside a bundle would name the bundle; each source keeps its own, so paths it
  // resolves relative to itself (the suite's YAML files, reports/out, chart.js) stay right. Only the
  // sources that use it go through the plugin (a plugin call per file costs more than reading them all).
  const ownUrlText = new Map(
    files
      .filter((f) => f.name.endsWith('.ts') && f.text.includes('import.meta.url'))
      .map((f) => [f.path, f.text.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(f.path).href))]),
  );
  const ownUrl = {
    name: 'own-import-meta-url',
    setup(b) {
      const filter = new RegExp(`^(${[...ownUrlText.keys()].map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`);
      b.onLoad({ filter }, (args) => ({ contents: ownUrlText.get(args.path), loader: 'ts' }));
    },
  };
  await esbuild({
    entryPoints: { 'ioasid-sim': `${root}bin/main.ts`, 'suite-worker': `${root}scenarios/suite-worker.ts` },
    outdir: out,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    define: { IOASID_SIM_SUITE_WORKER: JSON.stringify(`${finalDir}/suite-worker.mjs`) },
    plugins: [ownUrl],
    logLevel: 'warning',
  });
}

/** The bundle's folder for the sources as they are now, built when missing. */
export async function ensureBundle() {
  const files = inputs();
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f.name}\0${f.text}\0`);
  const id = hash.digest('hex').slice(0, 16);
  const dist = `${root}dist`;
  const dir = `${dist}/${id}`;
  if (existsSync(`${dir}/${COMPLETE}`)) return dir;
  // built beside it and renamed into place, so that a concurrent start never sees half a bundle
  // (relative chunk imports survive the rename; the worker entry is named for the final folder)
  const tmp = `${dist}/.${id}.${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    await build(files, tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  writeFileSync(`${tmp}/${COMPLETE}`, `${new Date().toISOString()}\n`);
  try {
    renameSync(tmp, dir);
  } catch (e) {
    // another start finished the same bundle first
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(`${dir}/${COMPLETE}`)) throw e;
  }
  // bundles of other sources, finished or not, go
  for (const d of readdirSync(dist)) if (d !== id && !d.startsWith(`.${id}.`)) rmSync(`${dist}/${d}`, { recursive: true, force: true });
  return dir;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await ensureBundle();
