// Splits SSE text into frames a test can compare: { event?, data (JSON-parsed unless [DONE]) } or { comment }.

export interface Frame {
  event?: string;
  data?: unknown;
  comment?: string;
}

export function sseFrames(text: string): Frame[] {
  const frames: Frame[] = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    if (block.trim() === '') continue;
    const frame: Frame = {};
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':')) frame.comment = line.slice(1).trim();
      else if (line.startsWith('event:')) frame.event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length > 0) {
      const raw = data.join('\n');
      frame.data = raw === '[DONE]' ? raw : (JSON.parse(raw) as unknown);
    }
    frames.push(frame);
  }
  return frames;
}

/** SSE text for a list of recorded events (`{ event?, data }`, data serialized unless it is a string). */
export function sseText(events: readonly { event?: string; data: unknown }[]): string {
  return events
    .map((e) => `${e.event === undefined ? '' : `event: ${e.event}\n`}data: ${typeof e.data === 'string' ? e.data : JSON.stringify(e.data)}\n\n`)
    .join('');
}
