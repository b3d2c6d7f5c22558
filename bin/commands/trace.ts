import { CommanderError, Option, type Command } from 'commander';
import { functionGraph, type KFn, type Span, type SpanJson } from '../../sim/index.ts';
import { builtinPlatforms } from '../../scenarios/platforms.ts';
import { runScenario } from '../../scenarios/runner.ts';
import { stepTrace, type StackName, type StepResult } from '../../scenarios/results.ts';
import { UsageError } from '../usage.ts';
import { loadOrExit, parseSeed } from './run.ts';

/** A recorded call tree back into spans, for the function_graph renderer (durations only). */
function toSpans(js: readonly SpanJson[]): Span[] {
  return js.map((j) => {
    const fn: KFn = { name: j.name, layer: j.layer, sig: j.sig, prov: { kind: j.prov.kind as KFn['prov']['kind'], source: j.prov.source } };
    const s: Span = { fn, start: 0, end: j.ns, children: toSpans(j.children) };
    if (j.op !== undefined) s.op = j.op;
    return s;
  });
}

interface Call {
  fn: string;
  layer: string;
  depth: number;
  provenance: string;
}

/** the pre-order list of traced frames, the root at depth 0 */
function calls(js: readonly SpanJson[], depth = 0, out: Call[] = []): Call[] {
  for (const j of js) {
    out.push({ fn: j.name, layer: j.layer, depth, provenance: j.prov.kind });
    calls(j.children, depth + 1, out);
  }
  return out;
}

/** `ioasid-sim trace <scenario> --stack X [--step PATH] [--json]`: the call graph of each step. */
export function registerTrace(program: Command): void {
  program
    .command('trace')
    .description('run a scenario on one stack and print each step\'s call graph (ftrace function_graph style)')
    .argument('<scenario>', 'a built-in scenario name or a path to a .yaml file')
    .addOption(new Option('--stack <stack>', 'which stack').choices(['tunnel', 'iommufd']).makeOptionMandatory())
    .option('--step <path>', 'only this step (e.g. 3 or 5.2.1)')
    .option('--seed <n>', 'seed', parseSeed, 1)
    .option('--json', 'print {"scenario","stack","steps":[{"path","op","calls":[{"fn","layer","depth","provenance"}]}]}')
    .action((name: string, o: { stack: StackName; step?: string; seed: number; json?: boolean }) => {
      const sc = loadOrExit(name);
      if (o.step !== undefined && !sc.flat.some((f) => f.path === o.step)) {
        throw new UsageError(`no step ${o.step} in ${sc.name} (steps: ${sc.flat.map((f) => f.path).join(', ')})`);
      }
      const r = runScenario(sc, { stacks: [o.stack], seed: o.seed, keepTrace: true, platforms: builtinPlatforms() });
      const s = r.stacks[o.stack]!;
      const steps: StepResult[] = s.steps.filter((st) => o.step === undefined || st.path === o.step);
      if (o.json) {
        const out = { scenario: sc.name, stack: o.stack, steps: steps.map((st) => ({ path: st.path, op: st.op, calls: calls(stepTrace(st) ?? []) })) };
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      } else {
        for (const st of steps) {
          process.stdout.write(`# step ${st.path} (${st.op}) on ${o.stack}: ${st.ok ? 'ok' : `FAILED, ${st.outcome}`}\n`);
          process.stdout.write(`${functionGraph(toSpans(stepTrace(st) ?? []), { annotate: true })}\n\n`);
        }
      }
      if (!s.ok) {
        process.stderr.write(`${sc.name} on ${o.stack}: ${s.error}\n`);
        throw new CommanderError(1, 'ioasid-sim.scenarioFailed', '');
      }
    });
}
