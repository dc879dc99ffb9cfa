// Makes the dashboard screenshots in docs/: the demo with traffic, blog-1 frozen for a while (so the
// charts show its slow, failed attempts beside blog-0's fast ones, and the retries and rescues that
// hid it from clients), at 1400 and 800 px; and the demo with 200 generated projects.
//
//   node --import tsx scripts/dashboard-screenshots.ts [outdir]     (about 5 minutes; needs chromium)

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

/**
 * Grows the viewport to the page's height (up to `maxHeight`): a full-page capture would paint the
 * sticky bar in the middle, and resizing after hovering would lose the tooltip.
 */
async function fitHeight(page: Page, maxHeight: number): Promise<void> {
  const width = page.viewportSize()?.width ?? 1400;
  const height = (await page.evaluate('document.documentElement.scrollHeight')) as number;
  await page.setViewportSize({ width, height: Math.min(maxHeight, height) });
  await sleep(500);
}

async function shoot(page: Page, file: string): Promise<void> {
  await page.screenshot({ path: join(out, file) });
  process.stdout.write(`wrote ${join(out, file)}\n`);
}

/** Moves the pointer along blog's p99 chart to where blog-1's attempts were slowest (the freeze). */
async function hoverIncident(page: Page): Promise<void> {
  const chart = page.locator('.project[data-project="blog"] .chart[data-chart="p99"] .plot');
  await chart.scrollIntoViewIfNeeded();
  const box = await chart.boundingBox();
  if (!box) return;
  let best = { x: box.x + box.width * 0.8, ms: -1 };
  for (let x = box.x + 50; x < box.x + box.width - 14; x += 1) {
    await page.mouse.move(x, box.y + box.height * 0.6);
    const text = (await chart.locator('.u-tip').textContent()) ?? '';
    const m = /blog-1([\d.]+) (ms|s)/.exec(text);
    const ms = m ? Number(m[1]) * (m[2] === 's' ? 1000 : 1) : -1;
    if (ms > best.ms) best = { x, ms };
  }
  await page.mouse.move(best.x, box.y + box.height * 0.6);
}

{
  const demo = await startDemo({
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    logDir: join(tmpdir(), 'wharf-screenshots'),
    rps: 40,
  });
  const post = (path: string) => fetch(`${demo.adminUrl}/api/demo/${path}`, { method: 'POST' });
  // Nearly five minutes of traffic fill the 5-minute charts; blog-1 hangs for a while near the end.
  await sleep(200_000);
  await post('blog/blog-1/freeze');
  await sleep(25_000);
  await post('blog/blog-1/revive');
  await sleep(40_000);
  for (const [width, file, query, maxHeight] of [
    [1400, 'dashboard-1400.png', '', 2600],
    [800, 'dashboard-800.png', '?q=blog', 1800],
  ] as const) {
    const page = await browser.newPage({ viewport: { width, height: 1000 } });
    await page.goto(`${demo.adminUrl}/${query}`);
    await page.locator('.project[data-project="blog"] canvas').nth(3).waitFor();
    await sleep(1500);
    await fitHeight(page, maxHeight);
    await hoverIncident(page);
    await shoot(page, file);
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
  await shoot(page, 'dashboard-200-projects.png');
  await page.close();
  await demo.stop();
}

await browser.close();
