// Reading the usage page in headless Chromium (Debian's `chromium`, driven by playwright-core): where the
// browser is, a table's rows, a chart's legend, and the pixels a chart drew.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Page } from 'playwright-core';

/** The first series' color in the page's charts (ui/static). */
export const FIRST_COLOR = [0x25, 0x63, 0xeb];

/** Debian's chromium on PATH (or $CHROMIUM_PATH): .ci/run installs it. */
export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, ...(process.env.PATH ?? '').split(delimiter).flatMap((d) => ['chromium', 'chromium-browser'].map((n) => join(d, n)))];
  for (const c of candidates) {
    if (c === undefined || c === '') continue;
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  throw new Error('no chromium executable on PATH (apt-get install chromium, or set CHROMIUM_PATH)');
}

/** A table row as the callbacks see it (this project compiles without the DOM library). */
interface Row {
  cells: ArrayLike<{ textContent: string | null }>;
}

export const rows = (page: Page, table: string): Promise<string[][]> =>
  page.$$eval(`#${table} tbody tr`, (trs) => trs.map((tr) => Array.from((tr as unknown as Row).cells, (c) => c.textContent ?? '')));

export const legend = (page: Page, group: string): Promise<string[]> =>
  page.$$eval(`figure.chart[data-group="${group}"] .u-legend .u-label`, (ls) => ls.map((l) => l.textContent ?? ''));

/** Per chart: its canvas size, and pixels of the first series' color in all and in the upper half (data above zero). */
export async function chartPixels(page: Page, group: string): Promise<{ width: number; height: number; first: number; upper: number } | null> {
  return page.$eval(
    `figure.chart[data-group="${group}"]`,
    (fig, color) => {
      const c = fig.querySelector('canvas');
      if (c === null) return null;
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let first = 0;
      let upper = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3]! > 200 && Math.abs(d[i]! - color[0]!) < 24 && Math.abs(d[i + 1]! - color[1]!) < 24 && Math.abs(d[i + 2]! - color[2]!) < 24) {
          first++;
          if (i / 4 / c.width < c.height / 2) upper++;
        }
      }
      const box = c.getBoundingClientRect();
      return { width: box.width, height: box.height, first, upper };
    },
    FIRST_COLOR,
  );
}
