// Calendar windows in UTC: a budget's window is the minute, hour, day (from 00:00) or month (from the
// 1st, 00:00) that holds an instant.

export const windows = ['minute', 'hour', 'day', 'month'] as const;
export type WindowName = (typeof windows)[number];

export interface WindowSpan {
  startMs: number;
  endMs: number;
}

const FIXED: Record<Exclude<WindowName, 'month'>, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

export function windowAt(window: WindowName, atMs: number): WindowSpan {
  if (window === 'month') {
    const d = new Date(atMs);
    const startMs = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    return { startMs, endMs: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
  }
  const size = FIXED[window];
  const startMs = Math.floor(atMs / size) * size;
  return { startMs, endMs: startMs + size };
}

/** The window `n` windows before the one holding `atMs` (n = 0: that one). */
export function windowBefore(window: WindowName, atMs: number, n: number): WindowSpan {
  let span = windowAt(window, atMs);
  for (let i = 0; i < n; i++) span = windowAt(window, span.startMs - 1);
  return span;
}

export const isWindowName = (s: string): s is WindowName => (windows as readonly string[]).includes(s);
