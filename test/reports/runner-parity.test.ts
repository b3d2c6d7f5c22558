/** report.json's figures equal what the runner gives for the same seed. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_COSTS } from '../../sim/index.ts';
import type { RunResult } from '../../scenarios/results.ts';
import { runSuite as runner, type RunSuiteOptions } from '../../scenarios/suite-run.ts';
import { runsWithoutTraces } from '../../reports/json.ts';
import { writeReport } from '../../reports/write.ts';
import { cli } from '../helpers/cli.ts';

describe('report.json against the runner', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ioasid-parity-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const opts: RunSuiteOptions = { invalidate: ['qemu'], costs: { name: 'default', table: DEFAULT_COSTS }, seed: 3, trace: false, resimulateContended: false };
  // two worker threads, whatever the machine's default: the pool must not change a figure
  const runSuite = async (): Promise<RunResult[]> => runner({ ...opts, jobs: 2 });

  it('carries the runs figure for figure, and a second run with the same seed, in one thread, gives the same figures', async () => {
    const { files } = writeReport(await runSuite(), { outDir: dir, samples: 1000 });
    const doc = JSON.parse(readFileSync(files.json, 'utf8')) as { runs: RunResult[] };
    // the second run in this thread: the worker pool changes nothing
    const again = JSON.parse(JSON.stringify(runsWithoutTraces(await runner({ ...opts, jobs: 1 })))) as RunResult[];
    expect(doc.runs).toEqual(again);
  });

  it('equals `ioasid-sim run <scenario> --json --seed 3 --invalidate qemu` for each scenario it reports', async () => {
    const help = cli('run', '--help');
    expect(help.code, 'the runner exists but the `run` command does not').toBe(0);
    const { files } = writeReport(await runSuite(), { outDir: join(dir, 'cli'), samples: 100 });
    const doc = JSON.parse(readFileSync(files.json, 'utf8')) as { runs: RunResult[] };
    // `run` exits 1 when an expectation fails, and still prints its JSON: one run per scenario named
    const out = cli('run', ...doc.runs.map((r) => r.scenario), '--json', '--seed', '3', '--invalidate', 'qemu');
    expect(out.stdout.trimStart().startsWith('['), out.stderr).toBe(true);
    const list = runsWithoutTraces(JSON.parse(out.stdout) as RunResult[]);
    expect(list).toHaveLength(doc.runs.length);
    for (const r of doc.runs) {
      const same = list.find((x) => x.scenario === r.scenario && x.invalidate === r.invalidate && x.profile === r.profile);
      expect(same).toEqual(r);
    }
  });
});
