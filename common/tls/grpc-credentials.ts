// grpc-js server and channel credentials for TLS and mutual TLS from PEM files that are re-read on change
// (Secret symlink swaps, cert-manager renewals) without a restart and without failing calls.
//
// What grpc-js 1.14.7 does with them (pinned by test/integration/quota-tls.test.ts):
// - Server: every update sets `http2Server.setSecureContext()`, which only affects handshakes from then on.
//   Open HTTP/2 connections keep the certificate (and, with mTLS, the client verification) they were
//   established with, and keep serving calls; new connections get the new files. So revoking a client CA
//   does not cut clients already connected: they are refused only when they reconnect (a server option
//   such as `grpc.max_connection_age_ms` bounds how long that takes).
// - Server: an update of `null` makes the server destroy every new connection until a good one comes; the
//   ReloadingCertificateProvider never publishes null, so a broken or half-rotated file keeps the old set.
// - Channel: the secure context is built from the latest CA/identity at each connection attempt, so a
//   channel that reconnects (server restart, GOAWAY, network blip) verifies with the new CA and presents
//   the new client certificate; the connection it already has is not re-verified. The channel side is
//   ours (ProviderChannelCredentials below) only to leave out the server name when dialling an IP.
import { credentials as grpcCredentials, experimental, type ChannelCredentials, type ServerCredentials } from '@grpc/grpc-js';
import { ProviderChannelCredentials } from './provider-channel-credentials.js';
import { checkClientPair, ReloadingCertificateProvider, type ReloadingCertificateProviderOptions } from './reloading-certificate-provider.js';

type ReloadOptions = Pick<ReloadingCertificateProviderOptions, 'refreshMs' | 'onReload'>;

export interface ServerTlsOptions extends ReloadOptions {
  /** PEM certificate chain the server presents. */
  certFile: string;
  /** PEM private key of `certFile`. */
  keyFile: string;
  /** PEM CA bundle; when set, clients must present a certificate that chains to it (mutual TLS). */
  clientCaFile?: string | undefined;
}

/**
 * TLS (or, with `clientCaFile`, mutual TLS) credentials for a grpc-js `Server`; files are re-read every
 * `refreshMs` (default 5000 ms) while a port uses them. Throws TlsConfigError naming an unusable file.
 * `close()` stops the polling (after `server.forceShutdown()`/`tryShutdown()`).
 */
export function serverTlsCredentials(opts: ServerTlsOptions): { credentials: ServerCredentials; close(): void } {
  const reload = { refreshMs: opts.refreshMs, onReload: opts.onReload };
  const identity = new ReloadingCertificateProvider({ certFile: opts.certFile, keyFile: opts.keyFile, ...reload });
  const clientCa = opts.clientCaFile === undefined ? null : new ReloadingCertificateProvider({ caFile: opts.clientCaFile, ...reload });
  // grpc-js 1.14 declares createCertificateProviderServerCredentials(caCertificateProvider,
  // identityCertificateProvider, requireClientCertificate) but hands its first two arguments, in that order,
  // to a constructor taking (identityCertificateProvider, caCertificateProvider, ...): the FIRST argument is
  // the identity (server certificate) and the SECOND the client CA, `null` for no client certificates
  // (a non-null second argument sets requestCert). Swapped, the server never gets a certificate and drops
  // every connection; the TLS-only and mTLS tests in quota-tls.test.ts pin this order.
  const credentials = experimental.createCertificateProviderServerCredentials(identity, clientCa, clientCa !== null);
  return {
    credentials,
    close: () => {
      identity.close();
      clientCa?.close();
    },
  };
}

export interface ChannelTlsOptions extends ReloadOptions {
  /** PEM CA bundle the server's certificate must chain to (re-read on change). */
  caFile: string;
  /** PEM client certificate for mutual TLS; with `keyFile`, or neither. */
  certFile?: string | undefined;
  /** PEM private key of `certFile`. */
  keyFile?: string | undefined;
  /** Name the server's certificate must carry, when it differs from the host of the address dialled. */
  serverName?: string | undefined;
}

/**
 * TLS credentials for a grpc-js client, with the channel options to pass beside them
 * (`new Client(address, credentials, channelOptions)`). Throws TlsConfigError naming an unusable file, or
 * when only one of certFile/keyFile is given. `close()` stops the polling.
 */
export function channelTlsCredentials(opts: ChannelTlsOptions): {
  credentials: ChannelCredentials;
  channelOptions: Record<string, string | number>;
  close(): void;
} {
  checkClientPair(opts.certFile, opts.keyFile);
  const reload = { refreshMs: opts.refreshMs, onReload: opts.onReload };
  const ca = new ReloadingCertificateProvider({ caFile: opts.caFile, ...reload });
  const identity = opts.certFile === undefined ? null : new ReloadingCertificateProvider({ certFile: opts.certFile, keyFile: opts.keyFile, ...reload });
  const credentials = new ProviderChannelCredentials(ca, identity);
  // grpc-js verifies the server against the host of the target unless `grpc.ssl_target_name_override` is
  // set, which becomes both the SNI and the name checked; `grpc.default_authority` alone changes only the
  // :authority header, not what the certificate is checked against. Both are set so they agree.
  const channelOptions: Record<string, string | number> =
    opts.serverName === undefined ? {} : { 'grpc.ssl_target_name_override': opts.serverName, 'grpc.default_authority': opts.serverName };
  return {
    credentials,
    channelOptions,
    close: () => {
      ca.close();
      identity?.close();
    },
  };
}

/** A client channel's credentials: TLS when `tls` is given (see channelTlsCredentials), plaintext otherwise. */
export function channelCredentials(tls: ChannelTlsOptions | undefined): ReturnType<typeof channelTlsCredentials> {
  return tls === undefined ? { credentials: grpcCredentials.createInsecure(), channelOptions: {}, close: () => undefined } : channelTlsCredentials(tls);
}
