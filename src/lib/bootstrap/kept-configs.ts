import { RedisStateStore } from '../lwm2m/redis-store';
import { StateStore, entriesOf, entryJson, openText, parseEntry, sealText } from '../lwm2m/state';
import type { BootstrapConfig } from './bootstrap-config';

const COLLECTION = 'bootstrapConfigs';

/**
 * The configurations flows gave the bootstrap server (by msg), kept in its
 * state store sealed under its state key (they hold PSKs and private keys):
 * back after a restart, and with Redis the same on every instance, which
 * hear of each change on a channel (and read them all again after an outage).
 */
export class KeptConfigs {
  private readonly channel?: string;

  constructor(
    private readonly store: StateStore,
    private readonly stateKey: Buffer,
    /** Sets (or with undefined removes) an endpoint's configuration in the server. */
    private readonly apply: (endpoint: string, config: BootstrapConfig | undefined) => void,
    private readonly warn: (error: Error) => void,
  ) {
    if (store instanceof RedisStateStore) {
      const channel = `${store.prefix}changed`;
      this.channel = channel;
      let listening = false;
      store.link.on('up', () => {
        // node-redis subscribes again by itself after a reconnect; what changed meanwhile is read again.
        if (!listening) store.link.listen(channel, (endpoint) => void this.refresh(endpoint)).catch((error: Error) => warn(error));
        listening = true;
        void this.load();
      });
    }
  }

  /** Every kept configuration into the server. */
  async load(): Promise<void> {
    try {
      const state = await this.store.load();
      for (const [endpoint, entry] of entriesOf(state, COLLECTION)) {
        // One that cannot be opened leaves the endpoint's configuration from the editor as it is.
        const config = this.open(endpoint, entry.json);
        if (config) this.apply(endpoint, config);
      }
    } catch (error) {
      this.warn(new Error(`kept bootstrap configurations not loaded: ${(error as Error).message}`));
    }
  }

  keep(endpoint: string, config: BootstrapConfig): Promise<void> {
    this.store.put(COLLECTION, endpoint, sealText(this.stateKey, COLLECTION, endpoint, entryJson(config, [])));
    return this.written(endpoint);
  }

  forget(endpoint: string): Promise<void> {
    this.store.delete(COLLECTION, endpoint);
    return this.written(endpoint);
  }

  private async written(endpoint: string): Promise<void> {
    await this.store.flush();
    if (this.channel && this.store instanceof RedisStateStore) await this.store.link.command(['PUBLISH', this.channel, endpoint]).catch(() => undefined);
  }

  /** Another instance changed an endpoint's configuration. */
  private async refresh(endpoint: string): Promise<void> {
    const store = this.store as RedisStateStore;
    try {
      const json = await store.get(COLLECTION, endpoint);
      if (json === undefined) this.apply(endpoint, undefined);
      else {
        const config = this.open(endpoint, json);
        if (config) this.apply(endpoint, config);
      }
    } catch (error) {
      this.warn(new Error(`bootstrap configuration of ${endpoint} not refreshed: ${(error as Error).message}`));
    }
  }

  private open(endpoint: string, json: string): BootstrapConfig | undefined {
    try {
      return parseEntry<BootstrapConfig>(openText(this.stateKey, COLLECTION, endpoint, json));
    } catch {
      this.warn(new Error(`the kept bootstrap configuration of ${endpoint} cannot be opened (the state key changed): set it again`));
      return undefined;
    }
  }
}
