/**
 * Opens report.html in Debian's chromium (/usr/bin/chromium, never a downloaded browser) with
 * playwright-core: no page errors, no console errors (a CSP violation is one), no request beyond
 * the file itself, and one rendered chart per scenario. Skipped only when the browser is not
 * installed, unless IOASID_REQUIRE_BROWSER=1 (as .ci/run sets), which turns that into a failure.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { writeReport } from '../../reports/write.ts';
import { syntheticSuite, syscallCrossingRun } from './fixtures.ts';

const CHROMIUM = '/usr/bin/chromium';
const required = process.env['IOASID_REQUIRE_BROWSER'] === '1';
const available = existsSync(CHROMIUM);

describe.skipIf(!available && !required)('report.html in chromium (skipped when /usr/bin/chromium is not installed)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ioasid-browser-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('renders without page errors and draws one chart per scenario', async () => {
    expect(available, `${CHROMIUM} is required (apt-get install chromium)`).toBe(true);
    const { files, model } = writeReport([...syntheticSuite(), syscallCrossingRun()], { outDir: dir, samples: 500 });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      page.on('request', (r) => {
        if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) requests.push(r.url());
      });
      await page.goto(pathToFileURL(files.html).href);
      await page.waitForFunction('window.__reportReady === true', undefined, { timeout: 20_000 });
      // runs in the page (the project has no DOM typings, so the function is given as text)
      const result = (await page.evaluate(`(() => {
        const canvases = [...document.querySelectorAll('canvas.scenario-chart')];
        const drawn = canvases.filter((c) => {
          if (!Chart.getChart(c) || c.width === 0 || c.height === 0) return false;
          const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) return true;
          return false;
        });
        return { canvases: canvases.length, drawn: drawn.length, status: document.getElementById('status').textContent, error: window.__reportError ?? null };
      })()`)) as { canvases: number; drawn: number; status: string; error: string | null };
      expect(errors).toEqual([]);
      expect(requests).toEqual([]);
      expect(result.error).toBeNull();
      expect(result.canvases).toBe(model.scenarios.length);
      expect(result.drawn).toBe(model.scenarios.length);
      expect(result.status).toMatch(/^rendered \d+ scenario charts/);
    } finally {
      await browser.close();
    }
  });
});
