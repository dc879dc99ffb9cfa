// Launching Debian's chromium through playwright-core (never a downloaded browser). Tests skip with
// a printed reason when /usr/bin/chromium is absent.
import { existsSync, mkdirSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const OUTPUT = 'test-output';

export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const reason = `${CHROMIUM} not installed (apt-get install -y chromium; .ci/run does it)`;
  process.stdout.write(`# skipping browser test: ${reason}\n`);
  return reason;
}

/** `extraArgs`: e.g. `--host-resolver-rules` to reach test hostnames on loopback. */
export async function launch(extraArgs: readonly string[] = []): Promise<Browser> {
  mkdirSync(OUTPUT, { recursive: true });
  // launch() gives every browser a fresh temporary user-data-dir of its own.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}

/**
 * Screenshot of the whole page. The viewport grows to the page's height first: a full-page capture
 * would paint the sticky header in the middle of the image.
 */
export async function snap(page: Page, path: string): Promise<void> {
  const width = page.viewportSize()?.width ?? 1440;
  const height = (await page.evaluate('document.documentElement.scrollHeight')) as number;
  await page.setViewportSize({ width, height: Math.min(4000, Math.max(600, height)) });
  await page.waitForTimeout(150); // charts follow the resize
  await page.screenshot({ path });
}
