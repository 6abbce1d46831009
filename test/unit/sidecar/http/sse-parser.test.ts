import { describe, expect, it } from 'vitest';
import { SseParser } from '../../../../sidecar/http/sse-parser.js';

describe('SseParser', () => {
  it('parses events split at every byte, with CRLF, CR and LF line ends', () => {
    const text = 'event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\rdata: 3\n\n';
    const p = new SseParser();
    const events = [];
    for (const byte of Buffer.from(text)) events.push(...p.push(Buffer.from([byte])));
    expect(events).toEqual([
      { event: 'a', data: '1' },
      { event: 'b', data: '2' },
      { event: undefined, data: '3' },
    ]);
  });

  it('joins multi-line data, skips comments, strips one leading space only', () => {
    const p = new SseParser();
    expect(p.push(': keep-alive\ndata:  two spaces\ndata:x\n\n')).toEqual([{ event: undefined, data: ' two spaces\nx' }]);
  });

  it('keeps multi-byte characters split across chunks intact', () => {
    const bytes = Buffer.from('data: héllo 👋\n\n');
    const p = new SseParser();
    const events = [...p.push(bytes.subarray(0, 8)), ...p.push(bytes.subarray(8, 15)), ...p.push(bytes.subarray(15))];
    expect(events).toEqual([{ event: undefined, data: 'héllo 👋' }]);
  });

  it('drops an event whose blank line never came, and ignores events without data', () => {
    const p = new SseParser();
    expect(p.push('event: ping\n\ndata: cut')).toEqual([]);
    expect(p.end()).toEqual([]);
  });
});
