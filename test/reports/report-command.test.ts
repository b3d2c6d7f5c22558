import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, startCli } from '../helpers/cli.ts';

describe('ioasid-sim report', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ioasid-report-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('treats a bad cost profile as a usage error', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"costs": {"sycall": {"ns": 1}}}');
    const r = cli('report', '--costs', bad, '--out', join(dir, 'x'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: .*costs\.sycall – unknown primitive/);
  });

  it('writes the four files for the default suite, through the bundle npm start builds', () => {
    const out = join(dir, 'suite');
    const r = startCli('report', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['report.txt', 'report.md', 'report.json', 'report.html']) expect(existsSync(join(out, f))).toBe(true);
    const text = readFileSync(join(out, 'report.txt'), 'utf8');
    expect(text.split('\n').filter((l) => [...l].length > 80)).toEqual([]);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).not.toMatch(/\b(?:https?|wss?|ftp):\/\//i);
    // the bundle resolved the suite's files and chart.js where the sources would have
    expect(r.stdout).toMatch(/^38 scenario runs on both stacks/);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toMatch(/Chart\.js v\d/);
  });

  it('runs the bundled suite worker with --jobs 2 and writes the same runs as one thread', () => {
    const args = ['report', '--scenarios', 'vsva-bind-dma', 'rebind-window', '--invalidate', 'qemu', '--samples', '100'];
    const one = startCli(...args, '--out', join(dir, 'j1'), '--jobs', '1');
    const two = startCli(...args, '--out', join(dir, 'j2'), '--jobs', '2');
    expect(one.code, one.stderr).toBe(0);
    expect(two.code, two.stderr).toBe(0);
    const runs = (d: string): unknown => (JSON.parse(readFileSync(join(dir, d, 'report.json'), 'utf8')) as { runs: unknown }).runs;
    expect(runs('j2')).toEqual(runs('j1'));
  }, 60_000);
});
