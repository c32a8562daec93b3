import type { Node, NodeAPI } from 'node-red';

/**
 * Per-row keys of an editor list (the PSK keys of the security list) in
 * password credentials, which Node-RED never sends back to the editor: a
 * stored credential holds {keyId: hex} for every row, and a second one the
 * changes of the last edit, {keyId: new hex, or "" to clear}, since the editor
 * cannot rewrite a whole set it cannot read.
 */
export interface KeyListCredentials {
  /** The stored keys' credential ({"keyId": "hex"}; flows saved before keep this format, keyed by endpoint). */
  stored: string;
  /** The credential with the editor's changes. */
  changes: string;
}

/** A row's key name: its keyId, or its endpoint for rows saved before rows had one. */
export function keyIdOf(row: { endpoint?: string; keyId?: string }): string {
  return row.keyId || row.endpoint || '';
}

function keyMap(text: unknown): Record<string, string> | undefined {
  if (text === undefined || text === null || text === '') return {};
  try {
    const value: unknown = JSON.parse(String(text));
    if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
    return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
  } catch {
    return undefined;
  }
}

/**
 * The keys of the rows listed now: the stored ones with the editor's changes
 * applied. The result is stored back and the changes dropped, so the next
 * edit starts from it; applying the same changes again (a restart before the
 * next deploy saved the result) gives the same keys.
 */
export function keysOf(RED: NodeAPI, node: Node, names: KeyListCredentials, keyIds: string[], messages: string): Record<string, string> {
  // As stored (not with $(ENV) references resolved), since the result is stored back.
  const raw = RED.nodes.getCredentials(node.id) as Record<string, unknown> | undefined;
  const credentials = raw ?? ((node.credentials ?? {}) as Record<string, unknown>);
  const stored = keyMap(credentials[names.stored]);
  const changes = keyMap(credentials[names.changes]);
  if (!stored || !changes) node.error(RED._(`${messages}.errors.keys`));
  const keys: Record<string, string> = {};
  for (const id of keyIds) {
    const key = changes?.[id] ?? stored?.[id];
    if (key) keys[id] = key;
  }
  const current = JSON.stringify(keys);
  if (raw && stored && changes && (raw[names.changes] !== undefined || raw[names.stored] !== current)) {
    const next: Record<string, unknown> = { ...raw, [names.stored]: current };
    delete next[names.changes];
    void RED.nodes.addCredentials(node.id, next);
    // The node's own copy too: whatever stores it later (a new state key) stores the result, not the changes again.
    const own = node.credentials as Record<string, unknown> | undefined;
    if (own) {
      own[names.stored] = current;
      delete own[names.changes];
    }
  }
  return keys;
}
