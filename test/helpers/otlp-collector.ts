// A fake OpenTelemetry Collector: an OTLP/HTTP traces receiver on 127.0.0.1 port 0 that decodes what it
// is sent, http/protobuf (by OTLP's own message definitions, test/fixtures/otlp/trace.proto) or http/json,
// into one flat span shape, so tests assert on the spans a real collector would have stored.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { listen } from '../../common/http/listen.js';

export type Attr = string | number | boolean;

export interface CollectedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  kind: 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER' | 'UNSPECIFIED';
  attributes: Record<string, Attr>;
  status: { code: 'UNSET' | 'OK' | 'ERROR'; message: string };
  /** The attributes of the resource the span came with. */
  resource: Record<string, Attr>;
  startNs: bigint;
  endNs: bigint;
}

export interface OtlpCollector {
  /** `http://127.0.0.1:port/v1/traces`. */
  url: string;
  spans: CollectedSpan[];
  /** Every export received: its content type and headers. */
  exports: { contentType: string; headers: IncomingHttpHeaders }[];
  /** Answer exports with this status from now on (a collector in trouble); 200 by default. */
  answerWith(status: number): void;
  /** Resolves once `check` holds for the spans received, else fails after `timeoutMs`. */
  waitFor(check: (spans: CollectedSpan[]) => boolean, timeoutMs?: number): Promise<CollectedSpan[]>;
  close(): Promise<void>;
}

const KINDS = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'] as const;
const CODES = ['UNSET', 'OK', 'ERROR'] as const;

const root = protobuf.loadSync(fileURLToPath(new URL('../fixtures/otlp/trace.proto', import.meta.url)));
const ExportRequest = root.lookupType('otlp.ExportTraceServiceRequest');

export async function startOtlpCollector(): Promise<OtlpCollector> {
  const spans: CollectedSpan[] = [];
  const exports: OtlpCollector['exports'] = [];
  let status = 200;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const contentType = String(req.headers['content-type'] ?? '');
      exports.push({ contentType, headers: req.headers });
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      if (status !== 200) return void res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
      const body = Buffer.concat(chunks);
      try {
        spans.push(...(contentType.startsWith('application/x-protobuf') ? fromProtobuf(body) : fromJson(body)));
      } catch (err) {
        return void res.writeHead(400).end(String(err));
      }
      // An empty ExportTraceServiceResponse: everything accepted.
      if (contentType.startsWith('application/x-protobuf')) res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const address = await listen(server, { host: '127.0.0.1', port: 0 }, 'collector');
  return {
    url: `http://127.0.0.1:${address.port}/v1/traces`,
    spans,
    exports,
    answerWith: (s) => void (status = s),
    async waitFor(check, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!check(spans)) {
        if (Date.now() > deadline) throw new Error(`the collector did not receive the expected spans within ${timeoutMs} ms; it has: ${spans.map((s) => s.name).join(', ')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return spans;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

type AnyValue = { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number };
type KeyValue = { key: string; value?: AnyValue };

function value(v: AnyValue | undefined): Attr {
  if (v === undefined) return '';
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  return '';
}

const attrs = (list: KeyValue[] | undefined): Record<string, Attr> => Object.fromEntries((list ?? []).map((kv) => [kv.key, value(kv.value)]));

interface RawSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number | string;
  attributes?: KeyValue[];
  status?: { code?: number | string; message?: string };
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
}

function flatten(request: { resourceSpans?: { resource?: { attributes?: KeyValue[] }; scopeSpans?: { spans?: RawSpan[] }[] }[] }): CollectedSpan[] {
  const out: CollectedSpan[] = [];
  for (const rs of request.resourceSpans ?? []) {
    const resource = attrs(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? '',
          name: s.name,
          kind: typeof s.kind === 'string' ? (s.kind.replace('SPAN_KIND_', '') as CollectedSpan['kind']) : KINDS[s.kind ?? 0]!,
          attributes: attrs(s.attributes),
          status: { code: typeof s.status?.code === 'string' ? (s.status.code.replace('STATUS_CODE_', '') as CollectedSpan['status']['code']) : CODES[s.status?.code ?? 0]!, message: s.status?.message ?? '' },
          resource,
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
        });
      }
    }
  }
  return out;
}

function fromProtobuf(body: Buffer): CollectedSpan[] {
  const decoded = ExportRequest.toObject(ExportRequest.decode(body), { longs: String, enums: String, bytes: String, defaults: false });
  // bytes as base64 by toObject: trace and span ids are shown in hex, as OTLP/JSON writes them.
  const hex = (b64: string | undefined): string => (b64 === undefined ? '' : Buffer.from(b64, 'base64').toString('hex'));
  for (const rs of decoded.resourceSpans ?? []) {
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        s.traceId = hex(s.traceId);
        s.spanId = hex(s.spanId);
        s.parentSpanId = hex(s.parentSpanId);
      }
    }
  }
  return flatten(decoded);
}

function fromJson(body: Buffer): CollectedSpan[] {
  return flatten(JSON.parse(body.toString('utf8')));
}
