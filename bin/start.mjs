// `npm start`: bundles the CLI with esbuild (a fraction of a second) and runs it in this process.
// Loading one bundle instead of transforming ~200 TypeScript files through tsx saves about a second
// of start-up here and in every worker thread of the suite pool. The bundle lives in dist/ (not
// committed) and is rebuilt on every start, so it never runs stale sources.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../', import.meta.url));
const dist = `${root}dist/`;

// import.meta.url inside a bundle would name the bundle; each source keeps its own, so paths it
// resolves relative to itself (the suite's YAML files, reports/out, chart.js) stay right. Only the
// sources that use it go through the plugin (a plugin call per file costs more than reading them all).
const usesOwnUrl = ['bin', 'models', 'sim', 'scenarios', 'reports']
  .flatMap((dir) => readdirSync(`${root}${dir}`, { recursive: true }).map((f) => `${root}${dir}/${f}`))
  .filter((f) => f.endsWith('.ts') && readFileSync(f, 'utf8').includes('import.meta.url'));
const ownUrl = {
  name: 'own-import-meta-url',
  setup(b) {
    const filter = new RegExp(`^(${usesOwnUrl.map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`);
    b.onLoad({ filter }, async (args) => ({
      contents: (await readFile(args.path, 'utf8')).replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
      loader: 'ts',
    }));
  },
};

// chunk names carry content hashes: start from an empty folder so old chunks do not pile up
rmSync(dist, { recursive: true, force: true });
await build({
  entryPoints: { 'ioasid-sim': `${root}bin/main.ts`, 'suite-worker': `${root}scenarios/suite-worker.ts` },
  outdir: dist,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  define: { IOASID_SIM_SUITE_WORKER: JSON.stringify(`${dist}suite-worker.mjs`) },
  plugins: [ownUrl],
  logLevel: 'warning',
});

const { main } = await import(pathToFileURL(`${dist}ioasid-sim.mjs`).href);
process.exitCode = await main(process.argv.slice(2));
