// Loads the .proto files at run time (they ship beside the code: proto/ in the source tree, copied next
// to the bundle's chunks by bundle.mjs) into grpc-js service definitions.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** Field names in camelCase, 64-bit integers as numbers, enums as their names. */
const OPTIONS = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true } as const;

function protoFile(rel: string): string {
  for (const base of ['./', '../proto/', './proto/']) {
    const path = fileURLToPath(new URL(base + rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error(`cannot find ${rel} beside ${fileURLToPath(import.meta.url)}`);
}

export interface QuotaProto {
  QuotaService: ServiceClientConstructor;
  QuotaAdmin: ServiceClientConstructor;
  Health: ServiceClientConstructor;
}

let loaded: QuotaProto | undefined;

export function loadQuotaProto(): QuotaProto {
  if (loaded !== undefined) return loaded;
  const def = loadSync([protoFile('quota/v1/quota.proto'), protoFile('grpc/health/v1/health.proto')], OPTIONS);
  const pkg = loadPackageDefinition(def) as unknown as { llmgw: { quota: { v1: GrpcObject } }; grpc: { health: { v1: GrpcObject } } };
  loaded = {
    QuotaService: pkg.llmgw.quota.v1.QuotaService as ServiceClientConstructor,
    QuotaAdmin: pkg.llmgw.quota.v1.QuotaAdmin as ServiceClientConstructor,
    Health: pkg.grpc.health.v1.Health as ServiceClientConstructor,
  };
  return loaded;
}
