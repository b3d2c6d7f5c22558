// `npm start`: runs the CLI from its esbuild bundle (bin/bundle.mjs), built when the sources changed.
import { pathToFileURL } from 'node:url';
import { ensureBundle } from './bundle.mjs';

const dir = await ensureBundle();
const { main } = await import(pathToFileURL(`${dir}/ioasid-sim.mjs`).href);
process.exitCode = await main(process.argv.slice(2));
