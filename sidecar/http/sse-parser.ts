// Incremental Server-Sent Events parser (WHATWG rules: CRLF/LF/CR line ends, multi-line data, comments),
// fed raw bytes as they arrive so events are forwarded without waiting for the whole stream.
import { StringDecoder } from 'node:string_decoder';

export interface SseEvent {
  /** The `event:` field; undefined when absent. */
  event: string | undefined;
  data: string;
}

export class SseParser {
  private readonly decoder = new StringDecoder('utf8');
  private buffer = '';
  private event: string | undefined;
  private data: string[] = [];
  /** A CR ended the last chunk: a LF at the start of the next belongs to it. */
  private pendingCR = false;

  /** Feeds bytes; returns the events they complete. */
  push(chunk: Buffer | string): SseEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    if (this.pendingCR && text.startsWith('\n')) text = text.slice(1);
    this.pendingCR = false;
    this.buffer += text;
    const out: SseEvent[] = [];
    let start = 0;
    const buf = this.buffer;
    for (;;) {
      const lf = buf.indexOf('\n', start);
      const cr = buf.indexOf('\r', start);
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        if (cr === buf.length - 1) {
          // Cannot tell yet whether a LF follows; treat the CR as a line end and skip a LF later.
          this.pendingCR = true;
          end = cr;
          next = cr + 1;
        } else {
          end = cr;
          next = buf[cr + 1] === '\n' ? cr + 2 : cr + 1;
        }
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      const ev = this.line(buf.slice(start, end));
      if (ev !== undefined) out.push(ev);
      start = next;
    }
    this.buffer = start === 0 ? buf : buf.slice(start);
    return out;
  }

  /** Flushes what the stream's end completes (a last event without its blank line is dropped, per spec). */
  end(): SseEvent[] {
    const rest = this.decoder.end();
    return rest === '' ? [] : this.push(rest);
  }

  private line(line: string): SseEvent | undefined {
    if (line === '') {
      if (this.data.length === 0) {
        this.event = undefined;
        return undefined;
      }
      const ev: SseEvent = { event: this.event, data: this.data.length === 1 ? this.data[0]! : this.data.join('\n') };
      this.event = undefined;
      this.data = [];
      return ev;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32 /* ' ' */) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    return undefined;
  }
}
