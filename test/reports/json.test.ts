import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_COSTS } from '../../sim/index.ts';
import { renderJson, runsWithoutTraces } from '../../reports/json.ts';
import { buildReportModel } from '../../reports/model.ts';
import { writeReport } from '../../reports/write.ts';
import { syntheticSuite } from './fixtures.ts';

describe('writeReport and report.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ioasid-report-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const runs = syntheticSuite();
  const { files } = writeReport(runs, { outDir: dir, samples: 300 });
  const doc = JSON.parse(readFileSync(files.json, 'utf8')) as Record<string, unknown>;

  it('writes the four files', () => {
    for (const f of Object.values(files)) expect(readFileSync(f, 'utf8').length).toBeGreaterThan(100);
    expect(Object.values(files).map((f) => f.slice(dir.length + 1)).sort()).toEqual(['report.html', 'report.json', 'report.md', 'report.txt']);
  });

  it('carries the runs exactly as given, call trees aside', () => {
    expect(doc['runs']).toEqual(JSON.parse(JSON.stringify(runsWithoutTraces(runs))));
    const steps = (doc['runs'] as { stacks: { tunnel: { steps: object[] } } }[])[0]!.stacks.tunnel.steps;
    expect(steps[0]).not.toHaveProperty('trace');
    expect(steps[0]).toHaveProperty('primitives');
  });

  it('carries the profile with its sources and the sensitivity results', () => {
    const profile = doc['profile'] as { name: string; costs: { kind: string; source: string }[] };
    expect(profile.name).toBe('default');
    expect(profile.costs.find((c) => c.kind === 'syscall')!.source).toBe(DEFAULT_COSTS.syscall.source);
    const s = doc['sensitivity'] as { samples: number; results: unknown[]; parameters: unknown[] };
    expect(s.samples).toBe(300);
    expect(s.results.length).toBeGreaterThan(0);
    expect(s.parameters).toHaveLength(28);
  });

  it('is JSON.stringify of the document, byte for byte, when runs share stack results (record once)', () => {
    // the batched run reuses the qemu run's stack results, as runSuite does when no flush batched
    const shared = runs.flatMap((r) => [r, { ...r, invalidate: 'batched' as const }]);
    const m = buildReportModel(shared, { samples: 50 });
    const { format, profile, invalidateModes, scenarios, qualityDefs, qualities, sensitivity } = m;
    const plain = JSON.stringify({ format, profile, invalidateModes, runs: runsWithoutTraces(shared), scenarios, qualityDefs, qualities, sensitivity });
    expect(renderJson(m, shared)).toBe(`${plain}\n`);
  });

  it('is byte-identical for the same runs and seed', () => {
    const again = writeReport(syntheticSuite(), { outDir: join(dir, 'again'), samples: 300 });
    for (const k of ['text', 'markdown', 'json', 'html'] as const) {
      expect(readFileSync(again.files[k], 'utf8')).toBe(readFileSync(files[k], 'utf8'));
    }
  });
});
