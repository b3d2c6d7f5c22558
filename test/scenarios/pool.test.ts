import { describe, expect, it } from 'vitest';
import { DEFAULT_COSTS } from '../../sim/index.ts';
import { WorkerPool, suiteWorkerEntry } from '../../scenarios/pool.ts';
import type { StackResult } from '../../scenarios/results.ts';
import { builtinPlatforms } from '../../scenarios/platforms.ts';
import { runStack } from '../../scenarios/runner.ts';
import { stackJobOptions, type StackJob } from '../../scenarios/suite-run.ts';
import { loadScenario } from '../../scenarios/suite.ts';

const job = (scenario: string): StackJob => ({ scenario, stack: 'iommufd', invalidate: 'qemu', point: 'default', profile: 'default', costs: DEFAULT_COSTS, seed: 5, keepTrace: true });

describe('the suite worker pool', () => {
  it('runs a stack in a worker thread exactly as in this one, call trees included; a job that fails is an error, not a result', async () => {
    const pool = new WorkerPool<StackJob, StackResult>(suiteWorkerEntry(), 2);
    try {
      const [inWorker, bad] = await Promise.allSettled([pool.run(job('vsva-bind-dma')), pool.run(job('no-such-scenario'))]);
      const r = loadScenario('vsva-bind-dma');
      if (!r.ok) throw new Error('load');
      const here = runStack(r.scenario, 'iommufd', stackJobOptions(job('vsva-bind-dma'), builtinPlatforms()));
      expect(inWorker.status).toBe('fulfilled');
      const got = (inWorker as PromiseFulfilledResult<StackResult>).value;
      expect(got.ok).toBe(true);
      expect(got).toEqual(here);
      expect(got.steps.some((s) => s.flatTrace && s.flatTrace.fn.length > 0)).toBe(true);
      expect(bad.status).toBe('rejected');
      expect(String((bad as PromiseRejectedResult).reason)).toMatch(/no-such-scenario did not load in the worker/);
      // the pool goes on after a failed job
      expect((await pool.run(job('rebind-window'))).ok).toBe(true);
    } finally {
      await pool.close();
    }
  }, 60_000);
});
