import fs from 'node:fs';
import path from 'node:path';
import type { Peer } from '../coap/peer';
import type { Registration, Transport } from './registration';

/** An observation as kept across restarts: enough to match its notifications and hand it to its node again. */
export interface PersistedObservation {
  /** The id flows know it by (absent in state saved before ids were kept: a new one is drawn). */
  id?: string;
  endpoint: string;
  /** The node that started it (a Node-RED node id), which adopts it again. */
  owner?: string;
  paths: string[];
  composite: boolean;
  format?: number;
  token: string;
  peer?: Peer;
  /** Absent in state saved before DTLS: plain UDP. */
  transport?: Transport;
}

/** A flow's request still waiting for a sleeping device, handed back to its node. */
export interface ParkedRequest {
  owner: string;
  endpoint: string;
  /** Time to live, as an absolute time. */
  deadline: number;
  msg: unknown;
}

/** What survives a redeploy or restart. */
export interface ServerState {
  version: 1;
  savedAt: number;
  registrations: Registration[];
  observations: PersistedObservation[];
  parked: ParkedRequest[];
}

/** Where a server keeps its state: a file by default, another store (Redis...) for several instances. */
export interface StateStore {
  load(): Promise<ServerState | undefined>;
  save(state: ServerState): Promise<void>;
}

/** JSON with Buffers as {"$buffer": base64}, so msgs and opaque values survive the file. */
function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  if (Buffer.isBuffer(raw)) return { $buffer: raw.toString('base64') };
  if (raw instanceof Date) return { $date: raw.toISOString() };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    if (typeof object.$buffer === 'string' && Object.keys(object).length === 1) return Buffer.from(object.$buffer, 'base64');
    if (typeof object.$date === 'string' && Object.keys(object).length === 1) return new Date(object.$date);
  }
  return value;
}

/** JSON text of a state, Buffers and Dates kept. */
export function stateToJson(value: unknown): string {
  return JSON.stringify(value, replacer);
}

export function stateFromJson(text: string): unknown {
  return JSON.parse(text, reviver);
}

/** Writes a file atomically: aside, synced, then renamed over the old one. */
export async function writeFileAtomically(file: string, text: string): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = await fs.promises.open(temporary, 'w');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.promises.rename(temporary, file);
}

/** The state in one JSON file, replaced atomically (written aside, then renamed over the old one). */
export class FileStateStore implements StateStore {
  constructor(readonly file: string) {}

  async load(): Promise<ServerState | undefined> {
    let text: string;
    try {
      text = await fs.promises.readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const state = stateFromJson(text) as ServerState;
    if (state?.version !== 1 || !Array.isArray(state.registrations)) throw new Error(`${this.file} is not an LwM2M server state file`);
    return { ...state, observations: state.observations ?? [], parked: state.parked ?? [] };
  }

  save(state: ServerState): Promise<void> {
    return writeFileAtomically(this.file, stateToJson(state));
  }
}
