import crypto from 'node:crypto';
import fs from 'node:fs';
import type { NodeAPI } from 'node-red';
import path from 'node:path';
import { entryJson, parseEntry } from '../lib/lwm2m/state';

/**
 * The key Node-RED encrypts flows_cred.json with (its credentialSecret, or
 * the one it generated), derived as Node-RED derives it: a state file
 * holding keys is then as hard to read as the flow's credentials.
 * Undefined when the user turned credential encryption off.
 */
export function credentialKey(RED: NodeAPI): Buffer | undefined {
  const settings = RED.settings as unknown as Record<string, unknown> & { get?(name: string): unknown };
  const setting = (name: string): unknown => {
    try {
      return settings.get ? settings.get(name) : settings[name];
    } catch {
      return settings[name]; // a runtime whose settings are not loaded (a test harness)
    }
  };
  const secret = setting('credentialSecret') ?? setting('_credentialSecret');
  return typeof secret === 'string' && secret !== '' ? crypto.createHash('sha256').update(secret).digest() : undefined;
}

interface Sealed {
  version: 1;
  iv: string;
  tag: string;
  data: string;
}

/** A JSON value in a file, encrypted and authenticated (AES-256-GCM): nothing in it is readable without the key. */
export class SealedFile {
  constructor(
    readonly file: string,
    private readonly key: Buffer,
  ) {}

  /** The value, or undefined when there is no file; throws when it was sealed with another key or altered. */
  read(): unknown {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const sealed = JSON.parse(text) as Sealed;
    const decipher = crypto.createDecipheriv('aes-256-gcm', this.key, Buffer.from(sealed.iv, 'base64'));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    const plain = Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]);
    return parseEntry(plain.toString('utf8'));
  }

  /** Writes it sealed, atomically: aside, synced, then renamed over the old file. */
  async write(value: unknown): Promise<void> {
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.key, iv);
    const data = Buffer.concat([cipher.update(entryJson(value, []), 'utf8'), cipher.final()]);
    const sealed: Sealed = { version: 1, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
    await fs.promises.mkdir(path.dirname(this.file), { recursive: true });
    const temporary = `${this.file}.${process.pid}.tmp`;
    const handle = await fs.promises.open(temporary, 'w');
    try {
      await handle.writeFile(JSON.stringify(sealed));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.promises.rename(temporary, this.file);
  }
}
