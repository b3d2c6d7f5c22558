/**
 * A worker thread of the suite pool: runs one stack of one scenario per message and posts the
 * StackResult back (scenarios/suite-run.ts). It loads scenarios itself, by the name or path the
 * main thread was given, and keeps them for the next job.
 */
import { parentPort } from 'node:worker_threads';
import { builtinPlatforms } from './platforms.ts';
import { stackJobOptions, type StackJob } from './suite-run.ts';
import { runStack } from './runner.ts';
import { loadScenario } from './suite.ts';
import type { LoadedScenario } from './types.ts';

const platforms = builtinPlatforms();
const loaded = new Map<string, LoadedScenario>();

function scenario(nameOrPath: string): LoadedScenario {
  let sc = loaded.get(nameOrPath);
  if (!sc) {
    const r = loadScenario(nameOrPath);
    if (!r.ok) throw new Error(`scenario ${nameOrPath} did not load in the worker`);
    loaded.set(nameOrPath, (sc = r.scenario));
  }
  return sc;
}

parentPort!.on('message', (job: StackJob) => {
  try {
    const result = runStack(scenario(job.scenario), job.stack, stackJobOptions(job, platforms));
    parentPort!.postMessage({ ok: true, result });
  } catch (e) {
    parentPort!.postMessage({ ok: false, error: e instanceof Error ? e.stack ?? e.message : String(e) });
  }
});
