/**
 * Engine benchmarks: the cost of tracing (on/off) on a control-path flow shaped like an ioctl
 * (six nested spans, a dozen charges, a copy), and the scheduler's unit throughput.
 */
import { Bench } from 'tinybench';
import { P, Sim, kfn, type KFn } from '../sim/index.ts';

const prov = { kind: 'merged', source: 'bench' } as const;
// declared through kfn, as every modelled function is
const fns: KFn[] = ['sys_ioctl', 'fops_ioctl', 'handler', 'core_op', 'driver_op', 'hw_op'].map((name, i) =>
  kfn({
    name,
    layer: ['syscall', 'fd', 'fd', 'core', 'driver', 'hw'][i]!,
    sig: `long ${name}(void)`,
    prov,
    ...(i === 0 ? { entry: 'syscall' as const } : {}),
  }),
);

function ioctlShaped(sim: Sim, depth = 0): void {
  sim.call(fns[depth]!, () => {
    sim.charge(P.mutex);
    sim.charge(P.copyFromUser, 1, 32);
    if (depth + 1 < fns.length) ioctlShaped(sim, depth + 1);
  });
}

function flowBench(trace: boolean): () => void {
  const sim = new Sim({ trace });
  const t = sim.sched.spawn('t');
  let i = 0;
  return () => {
    // a fresh step every 64 flows keeps the span trees bounded, as per-step recording does
    sim.beginStep(t, String(i++), 'b');
    sim.sched.runOn(t, () => {
      for (let k = 0; k < 64; k++) ioctlShaped(sim);
    });
    sim.endStep(t);
  };
}

export async function run(opts: { json: boolean }): Promise<void> {
  const bench = new Bench({ time: 1000, warmupTime: 200 });
  bench.add('flow, tracing on (64 ioctl-shaped flows)', flowBench(true));
  bench.add('flow, tracing off (64 ioctl-shaped flows)', flowBench(false));
  bench.add('scheduler: 4 threads × 256 units', () => {
    const sim = new Sim({ trace: false });
    const ts = [0, 1, 2, 3].map((i) => sim.sched.spawn(`t${i}`));
    for (let u = 0; u < 256; u++) for (const t of ts) sim.sched.post(t, () => sim.charge(P.syscall));
    sim.sched.run();
  });
  await bench.run();
  const hz = (i: number): number => {
    const r = bench.tasks[i]!.result;
    return r.state === 'completed' ? r.throughput.mean : NaN;
  };
  const on = hz(0) * 64;
  const off = hz(1) * 64;
  const units = hz(2) * 1024;
  const out = {
    flowsPerSecTraceOn: Math.round(on),
    flowsPerSecTraceOff: Math.round(off),
    traceOnOffRatio: Number((off / on).toFixed(3)),
    schedulerUnitsPerSec: Math.round(units),
  };
  if (!opts.json) {
    console.table(bench.table());
    console.log(`tracing on costs ${out.traceOnOffRatio}× tracing off (goal ≤ 1.5×)`);
  }
  console.log(JSON.stringify(out));
}
