// grpc-js channel credentials over certificate providers, as grpc-js' own
// `createCertificateProviderChannelCredentials` makes them (a secure context from the latest CA and identity
// at each connection attempt), except for the TLS server name: grpc-js sends the dialled host as SNI even
// when it is an IP address, which RFC 6066 forbids (strict TLS terminators refuse it) and Node warns about
// once per process (DEP0123, grpc/grpc-node#1919). Built on grpc-js' experimental connector API (pinned
// version: see grpc-credentials.ts); test/integration/quota-tls.test.ts pins the behaviour.
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext } from 'node:tls';
import { CallCredentials, ChannelCredentials, experimental } from '@grpc/grpc-js';

type ChannelOptions = Parameters<ChannelCredentials['_createSecureConnector']>[1];

/** What the server's certificate is checked for (`host`), and the TLS server name sent (never an IP address). */
interface TlsName {
  host: string;
  servername: string | undefined;
}

/** grpc-js' URI shape (uri-parser.ts), for the real target behind an HTTP CONNECT proxy. */
const URI = /^(?:([A-Za-z0-9+.-]+):)?(?:\/\/([^/]*)\/)?(.+)$/;

/**
 * The name grpc-js checks the certificate for (`grpc.ssl_target_name_override`, else the host of the target
 * or, through a proxy that grpc-js took from https_proxy/grpc_proxy, of the real target), sent as SNI only
 * when it is a host name: RFC 6066 forbids an IP address there.
 */
function tlsNameOf(target: experimental.GrpcUri, options: ChannelOptions): TlsName {
  const override = options['grpc.ssl_target_name_override'];
  let host: string;
  if (typeof override === 'string' && override !== '') host = override;
  else {
    const proxied = options['grpc.http_connect_target'];
    const real = typeof proxied === 'string' ? URI.exec(proxied) : null;
    const uri = real === null ? target : { scheme: real[1], path: real[3]! };
    const authority = uri.scheme?.startsWith('unix') ? 'localhost' : uri.path.split(',')[0]!;
    host = experimental.splitHostPort(authority)?.host ?? authority;
  }
  return { host, servername: isIP(host) === 0 ? host : undefined };
}

/**
 * Channel credentials over certificate providers, as grpc-js' `createCertificateProviderChannelCredentials`
 * makes them (a secure context from the latest CA and identity at each connection attempt), except for the
 * server name: grpc-js sends the dialled host as SNI even when it is an IP address, which Node warns about
 * once per process (DEP0123, grpc/grpc-node#1919). Here an IP sends none and the certificate is checked
 * against the IP (its IP subjectAltNames), as before; a host name is sent and checked as grpc-js does.
 */
export class ProviderChannelCredentials extends ChannelCredentials {
  private ca: experimental.CaCertificateUpdate | null | undefined;
  private identity: experimental.IdentityCertificateUpdate | null | undefined;
  private refs = 0;
  private waiting: (() => void)[] = [];
  private readonly onCa = (update: experimental.CaCertificateUpdate | null): void => {
    this.ca = update;
    this.wake();
  };
  private readonly onIdentity = (update: experimental.IdentityCertificateUpdate | null): void => {
    this.identity = update;
    this.wake();
  };

  /** `identityProvider`: the client certificate for mutual TLS, `null` for none. */
  constructor(
    private readonly caProvider: experimental.CertificateProvider,
    private readonly identityProvider: experimental.CertificateProvider | null,
  ) {
    super();
  }

  override _isSecure(): boolean {
    return true;
  }

  override _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  /** One per subchannel: providers are listened to while any subchannel uses these credentials. */
  override _createSecureConnector(target: experimental.GrpcUri, options: ChannelOptions, callCredentials?: CallCredentials): experimental.SecureConnector {
    this.ref();
    const name = tlsNameOf(target, options);
    let destroyed = false;
    return {
      connect: (socket) => this.connect(socket, name),
      waitForReady: () => (this.received() ? Promise.resolve() : new Promise((resolve) => this.waiting.push(resolve))),
      getCallCredentials: () => callCredentials ?? CallCredentials.createEmpty(),
      destroy: () => {
        if (destroyed) return;
        destroyed = true;
        this.unref();
      },
    };
  }

  private connect(socket: Socket, name: TlsName): Promise<experimental.SecureConnectResult> {
    return new Promise((resolve, reject) => {
      const secureContext = this.secureContext();
      if (secureContext === null) return reject(new Error('Failed to load credentials'));
      if (socket.closed) return reject(new Error('Socket closed while loading credentials'));
      const onClose = (): void => reject(new Error('Socket closed'));
      // No servername: no SNI, and Node checks the certificate against `host`.
      const tlsSocket = tlsConnect({ socket, secureContext, host: name.host, servername: name.servername, ALPNProtocols: ['h2'] }, () => {
        tlsSocket.off('close', onClose).off('error', reject);
        if (!tlsSocket.authorized) {
          tlsSocket.destroy();
          return reject(tlsSocket.authorizationError);
        }
        resolve({ socket: tlsSocket, secure: true });
      });
      tlsSocket.once('close', onClose).once('error', reject);
    });
  }

  private received(): boolean {
    return this.ca !== undefined && (this.identityProvider === null || this.identity !== undefined);
  }

  private secureContext(): SecureContext | null {
    if (!this.ca || (this.identityProvider !== null && !this.identity)) return null;
    try {
      // GRPC_SSL_CIPHER_SUITES: the variable grpc-js honours for its own secure contexts.
      return createSecureContext({ ca: this.ca.caCertificate, cert: this.identity?.certificate, key: this.identity?.privateKey, ciphers: process.env.GRPC_SSL_CIPHER_SUITES });
    } catch {
      return null; // the providers publish only sets that make a context; a failure here fails the attempt
    }
  }

  private wake(): void {
    if (this.received()) for (const resolve of this.waiting.splice(0)) resolve();
  }

  private ref(): void {
    if (this.refs++ > 0) return;
    this.caProvider.addCaCertificateListener(this.onCa);
    this.identityProvider?.addIdentityCertificateListener(this.onIdentity);
  }

  private unref(): void {
    if (--this.refs > 0) return;
    this.caProvider.removeCaCertificateListener(this.onCa);
    this.identityProvider?.removeIdentityCertificateListener(this.onIdentity);
  }
}
