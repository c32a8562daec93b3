import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** A firmware or software package the server delivers: its bytes, named by their SHA-256. */
export interface FirmwarePackage {
  sha256: string;
  data: Buffer;
  /** The first 8 bytes of the SHA-256: the CoAP ETag and HTTP ETag of the file. */
  etag: Buffer;
}

export function packageOf(data: Buffer): FirmwarePackage {
  const digest = createHash('sha256').update(data).digest();
  return { sha256: digest.toString('hex'), data, etag: digest.subarray(0, 8) };
}

/**
 * Where packages are kept while campaigns use them, by SHA-256: apart from
 * the state store, whose entries are small JSON texts (a package of several
 * megabytes would be written again with every save of a file store).
 */
export interface PackageStore {
  save(pkg: FirmwarePackage): Promise<void>;
  /** The package, or undefined when the store does not have it (any more). */
  load(sha256: string): Promise<FirmwarePackage | undefined>;
  remove(sha256: string): Promise<void>;
  /** Removes everything (the server was deleted). */
  destroy(): Promise<void>;
}

/** Packages in memory only: a server without a state store, or tests. */
export class MemoryPackageStore implements PackageStore {
  private readonly packages = new Map<string, FirmwarePackage>();

  async save(pkg: FirmwarePackage): Promise<void> {
    this.packages.set(pkg.sha256, pkg);
  }

  async load(sha256: string): Promise<FirmwarePackage | undefined> {
    return this.packages.get(sha256);
  }

  async remove(sha256: string): Promise<void> {
    this.packages.delete(sha256);
  }

  async destroy(): Promise<void> {
    this.packages.clear();
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Packages as files `<sha256>.bin` in a folder (beside the server's state
 * file), written aside and renamed, so a crash leaves a whole file or none;
 * a file whose bytes no longer match its name is not used.
 */
export class FilePackageStore implements PackageStore {
  constructor(readonly folder: string) {}

  async save(pkg: FirmwarePackage): Promise<void> {
    const file = this.fileOf(pkg.sha256);
    if (await exists(file)) return;
    await fs.promises.mkdir(this.folder, { recursive: true });
    const temporary = `${file}.${process.pid}.tmp`;
    try {
      await fs.promises.writeFile(temporary, pkg.data);
      await fs.promises.rename(temporary, file);
    } catch (error) {
      await fs.promises.rm(temporary, { force: true });
      throw error;
    }
  }

  async load(sha256: string): Promise<FirmwarePackage | undefined> {
    let data: Buffer;
    try {
      data = await fs.promises.readFile(this.fileOf(sha256));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const pkg = packageOf(data);
    return pkg.sha256 === sha256 ? pkg : undefined;
  }

  async remove(sha256: string): Promise<void> {
    await fs.promises.rm(this.fileOf(sha256), { force: true });
  }

  async destroy(): Promise<void> {
    await fs.promises.rm(this.folder, { recursive: true, force: true });
  }

  private fileOf(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new Error(`not a package name: ${sha256}`);
    return path.join(this.folder, `${sha256}.bin`);
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.promises.access(file);
    return true;
  } catch {
    return false;
  }
}
