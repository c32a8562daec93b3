import fs from 'node:fs';
import type { SealedFile } from './sealed-file';

/** Written at most this often. */
const SAVE_DELAY_MS = 1000;

/** Per bootstrap server node id: what its flows set, which a redeploy (a new node object) takes over in this process. */
const inProcess = new Map<string, Map<string, unknown>>();

/**
 * The bootstrap configurations flows gave a bootstrap server with msgs (the
 * lwm2m bootstrap node), as they were given: kept in this process across
 * redeploys and, sealed with Node-RED's credential key, in a file across
 * restarts. Keys are never written in clear: without a key, only the process keeps them.
 */
export class FlowConfigs {
  private readonly payloads: Map<string, unknown>;
  private timer?: NodeJS.Timeout;
  private saving: Promise<void> = Promise.resolve();
  private warned = false;

  constructor(
    private readonly nodeId: string,
    private readonly file: SealedFile | undefined,
    private readonly onError: (error: Error) => void,
  ) {
    let payloads = inProcess.get(nodeId);
    if (!payloads) {
      payloads = new Map();
      try {
        const saved = file?.read() as Record<string, unknown> | undefined;
        for (const [endpoint, payload] of Object.entries(saved ?? {})) payloads.set(endpoint, payload);
      } catch (error) {
        onError(new Error(`configurations set by msgs not restored from ${file?.file}: ${(error as Error).message}`));
      }
      inProcess.set(nodeId, payloads);
    }
    this.payloads = payloads;
  }

  entries(): [string, unknown][] {
    return [...this.payloads];
  }

  set(endpoint: string, payload: unknown): void {
    this.payloads.set(endpoint, payload);
    if (!this.file && !this.warned) {
      this.warned = true;
      this.onError(new Error('configurations set by msgs are kept until Node-RED restarts: without a user directory and credential encryption (credentialSecret) they are not written to disk'));
    }
    this.scheduleSave();
  }

  remove(endpoint: string): void {
    if (this.payloads.delete(endpoint)) this.scheduleSave();
  }

  /** The node stops: a redeploy or restart keeps what was set, removing the node forgets it. */
  async close(removed: boolean): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (removed) {
      inProcess.delete(this.nodeId);
      await this.saving;
      if (this.file) await fs.promises.rm(this.file.file, { force: true });
      return;
    }
    await this.save();
  }

  private scheduleSave(): void {
    if (!this.file || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.save();
    }, SAVE_DELAY_MS);
  }

  private save(): Promise<void> {
    const file = this.file;
    if (!file) return Promise.resolve();
    const snapshot = Object.fromEntries(this.payloads);
    this.saving = this.saving.then(() => file.write(snapshot)).catch((error: Error) => this.onError(new Error(`configurations set by msgs not saved: ${error.message}`)));
    return this.saving;
  }
}
