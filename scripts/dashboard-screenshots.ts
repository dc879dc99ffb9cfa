// Makes the dashboard screenshots in docs/: the demo with traffic, blog-1 frozen for a while (so the
// charts show its slow, failed attempts beside blog-0's fast ones, and the retries and rescues that
// hid it from clients), at 1400 and 800 px; and the demo with 200 generated projects.
//
//   node --import tsx scripts/dashboard-screenshots.ts [outdir]     (about 3 minutes; needs chromium)

import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { startDemo } from '../src/demo/index.ts';

const out = process.argv[2] ?? 'docs';
mkdirSync(out, { recursive: true });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu'],
});

/** The whole page, the viewport grown to its height first (a full-page shot repeats the sticky bar). */
async function shoot(page: Page, file: string, maxHeight: number): Promise<void> {
  const width = page.viewportSize()?.width ?? 1400;
  const height = (await page.evaluate('document.documentElement.scrollHeight')) as number;
  await page.setViewportSize({ width, height: Math.min(maxHeight, height) });
  await sleep(400);
  await page.screenshot({ path: join(out, file) });
  process.stdout.write(`wrote ${join(out, file)}\n`);
}

{
  const demo = await startDemo({
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    logDir: join(tmpdir(), 'wharf-screenshots'),
    rps: 40,
  });
  const post = (path: string) => fetch(`${demo.adminUrl}/api/demo/${path}`, { method: 'POST' });
  await sleep(60_000);
  await post('blog/blog-1/freeze');
  await sleep(25_000);
  await post('blog/blog-1/revive');
  await sleep(15_000);
  for (const [width, file, maxHeight] of [
    [1400, 'dashboard-1400.png', 1700],
    [800, 'dashboard-800.png', 2400],
  ] as const) {
    const page = await browser.newPage({ viewport: { width, height: 1000 } });
    // blog first: its charts tell the story.
    await page.goto(`${demo.adminUrl}/?q=blog`);
    await page.locator('.project[data-project="blog"] canvas').nth(3).waitFor();
    await sleep(1500);
    const chart = page.locator('.project[data-project="blog"] .chart[data-chart="p99"] .plot');
    const box = await chart.boundingBox();
    if (box) await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.6);
    await shoot(page, file, maxHeight);
    await page.close();
  }
  await demo.stop();
}

{
  const demo = await startDemo({
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    logDir: join(tmpdir(), 'wharf-screenshots-200'),
    rps: 60,
    extraProjects: 200,
  });
  await sleep(30_000);
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`${demo.adminUrl}/`);
  await page.locator('.project').nth(202).waitFor({ state: 'attached' });
  await sleep(2000);
  await page.screenshot({ path: join(out, 'dashboard-200-projects.png') });
  process.stdout.write(`wrote ${join(out, 'dashboard-200-projects.png')}\n`);
  await page.close();
  await demo.stop();
}

await browser.close();
