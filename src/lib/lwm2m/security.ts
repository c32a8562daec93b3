import { parsePublicKey, describeIdentity, PeerIdentity } from '../dtls/credentials';

export type SecurityMode = 'psk' | 'rpk' | 'x509';

/** How one endpoint must authenticate (LwM2M Security object modes 0-2). */
export type EndpointSecurity =
  | { mode: 'psk'; identity: string; key: Buffer }
  | { mode: 'rpk'; publicKey: Buffer }
  /** The certificate's CN must be the endpoint name; the chain must lead to a trusted authority. */
  | { mode: 'x509' };

/** One string per identity, for comparing who sent a request with who registered. */
export function identityKey(identity: PeerIdentity | undefined): string {
  if (!identity) return 'nosec';
  switch (identity.kind) {
    case 'psk':
      return `psk:${identity.identity}`;
    case 'rpk':
      return `rpk:${identity.publicKey}`;
    case 'x509':
      return `x509:${identity.commonName}`;
  }
}

/** Checks and normalises a security entry as it comes from configuration or a msg; throws with a reason. */
export function parseEndpointSecurity(entry: { mode?: unknown; identity?: unknown; key?: unknown; publicKey?: unknown }): EndpointSecurity {
  switch (entry.mode) {
    case 'psk': {
      if (typeof entry.identity !== 'string' || entry.identity.length === 0) throw new Error('PSK mode needs an identity');
      if (typeof entry.key !== 'string' || !/^([0-9a-fA-F]{2})+$/.test(entry.key)) throw new Error('PSK mode needs a key in hex (an even number of hex digits)');
      if (entry.key.length > 128) throw new Error('PSK key longer than 64 bytes');
      return { mode: 'psk', identity: entry.identity, key: Buffer.from(entry.key, 'hex') };
    }
    case 'rpk': {
      if (typeof entry.publicKey !== 'string' || entry.publicKey.trim() === '') throw new Error('RPK mode needs the device public key');
      return { mode: 'rpk', publicKey: parsePublicKey(entry.publicKey) };
    }
    case 'x509':
      return { mode: 'x509' };
    default:
      throw new Error(`security mode must be psk, rpk or x509, not ${JSON.stringify(entry.mode)}`);
  }
}

/**
 * Which endpoint may use which credentials. The DTLS server asks it for PSK
 * keys and trusted raw public keys; the Registration interface asks it
 * whether an identity may register as an endpoint.
 */
export class SecurityRegistry {
  private readonly byEndpoint = new Map<string, EndpointSecurity>();
  private readonly pskByIdentity = new Map<string, { endpoint: string; key: Buffer }>();
  private readonly endpointByPublicKey = new Map<string, string>();

  /** Adds or replaces an endpoint's entry; throws when its PSK identity or public key belongs to another endpoint. */
  set(endpoint: string, security: EndpointSecurity): void {
    const owner =
      security.mode === 'psk'
        ? this.pskByIdentity.get(security.identity)?.endpoint
        : security.mode === 'rpk'
          ? this.endpointByPublicKey.get(security.publicKey.toString('base64'))
          : undefined;
    if (owner !== undefined && owner !== endpoint) throw new Error(`${security.mode === 'psk' ? 'PSK identity' : 'public key'} already used by endpoint ${owner}`);
    this.remove(endpoint);
    this.byEndpoint.set(endpoint, security);
    if (security.mode === 'psk') this.pskByIdentity.set(security.identity, { endpoint, key: security.key });
    if (security.mode === 'rpk') this.endpointByPublicKey.set(security.publicKey.toString('base64'), endpoint);
  }

  remove(endpoint: string): boolean {
    const security = this.byEndpoint.get(endpoint);
    if (!security) return false;
    this.byEndpoint.delete(endpoint);
    if (security.mode === 'psk') this.pskByIdentity.delete(security.identity);
    if (security.mode === 'rpk') this.endpointByPublicKey.delete(security.publicKey.toString('base64'));
    return true;
  }

  get(endpoint: string): EndpointSecurity | undefined {
    return this.byEndpoint.get(endpoint);
  }

  endpoints(): string[] {
    return [...this.byEndpoint.keys()];
  }

  pskKey(identity: string): Buffer | undefined {
    return this.pskByIdentity.get(identity)?.key;
  }

  trustsRawPublicKey(spki: Buffer): boolean {
    return this.endpointByPublicKey.has(spki.toString('base64'));
  }

  /** The endpoint an identity is bound to: by its PSK identity or raw public key, or a certificate's CN. */
  endpointOf(identity: PeerIdentity): string | undefined {
    if (identity.kind === 'psk') return this.pskByIdentity.get(identity.identity)?.endpoint;
    if (identity.kind === 'rpk') return this.endpointByPublicKey.get(identity.publicKey);
    return identity.commonName;
  }

  /** Why an identity may not act as this endpoint; undefined when it may. */
  refusal(endpoint: string, identity: PeerIdentity | undefined): string | undefined {
    const security = this.byEndpoint.get(endpoint);
    // Node's TLS has no raw public keys (RFC 7250): RPK devices come over DTLS only.
    if (!identity) return security ? `endpoint ${endpoint} must use ${security.mode === 'rpk' ? 'DTLS' : 'DTLS or TLS'} (${security.mode.toUpperCase()})` : undefined;
    if (this.endpointOf(identity) !== endpoint) return `${describeIdentity(identity)} is not bound to endpoint ${endpoint}`;
    if (identity.kind === 'x509' && security && security.mode !== 'x509') return `endpoint ${endpoint} must use ${security.mode.toUpperCase()}, not a certificate`;
    return undefined;
  }
}
