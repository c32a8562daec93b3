import { PeerIdentity, describeIdentity } from '../dtls/credentials';
import { identityKey } from './security';

/** An endpoint name and the DTLS identity it registered with, as saved with the server's state. */
interface EndpointBinding {
  endpoint: string;
  identity: PeerIdentity;
}

/**
 * Endpoint names that registered over DTLS, with the identity they proved:
 * from then on only that identity may act as the name (no NoSec impostor,
 * no other certificate). The security list decides for the names it holds; a
 * name taken out of it stays bound. A binding outlives its registration;
 * only removing it on purpose lets another identity in.
 */
export class EndpointBindings {
  private readonly byEndpoint = new Map<string, PeerIdentity>();

  /** registered: whether a name is registered now (those are never evicted to make room). */
  constructor(
    private readonly limit: number,
    private readonly registered: (endpoint: string) => boolean,
  ) {}

  /** Why this identity may not act as the endpoint; undefined when it may (or the name is not bound). */
  refusal(endpoint: string, identity: PeerIdentity | undefined): string | undefined {
    const bound = this.byEndpoint.get(endpoint);
    if (!bound || identityKey(bound) === identityKey(identity)) return undefined;
    return `endpoint ${endpoint} registered over DTLS as ${describeIdentity(bound)}: ${identity ? describeIdentity(identity) : 'a device without DTLS'} may not take it over`;
  }

  /** Binds the name to the identity it registered with; returns whether anything changed. */
  bind(endpoint: string, identity: PeerIdentity): boolean {
    const bound = this.byEndpoint.get(endpoint);
    if (bound && identityKey(bound) === identityKey(identity)) return false;
    this.byEndpoint.delete(endpoint);
    if (this.byEndpoint.size >= this.limit) this.evict();
    this.byEndpoint.set(endpoint, identity);
    return true;
  }

  forget(endpoint: string): boolean {
    return this.byEndpoint.delete(endpoint);
  }

  get(endpoint: string): PeerIdentity | undefined {
    return this.byEndpoint.get(endpoint);
  }

  restore(bindings: EndpointBinding[]): void {
    for (const binding of bindings) {
      if (typeof binding?.endpoint === 'string' && binding.identity && typeof binding.identity.kind === 'string') this.bind(binding.endpoint, binding.identity);
    }
  }

  /** Makes room: the oldest binding of a name that is not registered now. */
  private evict(): void {
    for (const endpoint of this.byEndpoint.keys()) {
      if (!this.registered(endpoint)) {
        this.byEndpoint.delete(endpoint);
        return;
      }
    }
  }
}
