import { ContentRecord, ResourceType, ResourceValue, coerceValue } from '../content/values';
import { Lwm2mPath } from '../model/path';

export type SecurityMode = 'psk' | 'rpk' | 'x509' | 'nosec';

/** Security mode resource values of the Security object (/0/x/2). */
const SECURITY_MODE_VALUES: Record<SecurityMode, number> = { psk: 0, rpk: 1, x509: 2, nosec: 3 };

/** One account the device gets: a Security (/0) and, for an LwM2M server, a Server (/1) instance. */
export interface ServerAccount {
  uri: string;
  securityMode: SecurityMode;
  shortServerId: number;
  lifetime: number;
  binding: string;
  notificationStoring: boolean;
  /** PSK identity, or the device's public key or certificate (RPK, X.509). */
  publicKeyOrIdentity?: Buffer;
  serverPublicKey?: Buffer;
  /** PSK key or the device's private key. A secret: never logged or put in events. */
  secretKey?: Buffer;
}

export interface AclEntry {
  objectId: number;
  instanceId: number;
  /** Short server id -> access rights bits (1 read, 2 write, 4 execute, 8 delete, 16 create). */
  rights: Record<number, number>;
  owner: number;
}

export interface BootstrapConfig {
  servers: ServerAccount[];
  /** The device's own account on this bootstrap server, rewritten when given. */
  bootstrapServer?: Omit<ServerAccount, 'shortServerId' | 'lifetime' | 'binding' | 'notificationStoring'>;
  acl: AclEntry[];
}

/** A configuration from a msg or the editor that cannot be used, with the reason. */
export class BootstrapConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BootstrapConfigError';
  }
}

function fail(message: string): never {
  throw new BootstrapConfigError(message);
}

/** Hex (or a Buffer) for keys and identities; text for a PSK identity. */
function bytes(value: unknown, what: string, text = false): Buffer | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (Buffer.isBuffer(value)) return value;
  if (typeof value !== 'string') fail(`${what} must be ${text ? 'text or ' : ''}hex`);
  if (text) return Buffer.from(value, 'utf8');
  const hex = value.replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})+$/.test(hex)) fail(`${what} must be hex, such as 000102030405060708090a0b0c0d0e0f`);
  return Buffer.from(hex, 'hex');
}

function parseAccount(input: Record<string, unknown>, where: string, bootstrap: boolean): ServerAccount {
  const uri = input.uri ?? input.serverUri;
  // coap+tcp:// and coaps+tcp:// (RFC 8323) for servers reached over TCP and TLS (binding T).
  if (typeof uri !== 'string' || !/^coaps?(\+tcp)?:\/\/(\[[0-9a-fA-F:.]+\]|[^/:\s[\]]+)(:\d{1,5})?\/?$/.test(uri.trim())) {
    fail(`${where}: uri must look like coap://host:5683, coaps://host:5684, coap+tcp://host:5683 or coaps+tcp://host:5684, not ${JSON.stringify(uri)}`);
  }
  const mode = text(input.securityMode ?? 'nosec', `${where}: securityMode`).toLowerCase() as SecurityMode;
  if (!(mode in SECURITY_MODE_VALUES)) fail(`${where}: securityMode must be nosec, psk, rpk or x509, not ${JSON.stringify(input.securityMode)}`);
  const secure = uri.trim().startsWith('coaps');
  if (mode === 'nosec' && secure) fail(`${where}: a coaps:// or coaps+tcp:// server needs securityMode psk, rpk or x509`);
  if (mode !== 'nosec' && !secure) fail(`${where}: securityMode ${mode} needs a coaps:// or coaps+tcp:// uri`);
  if (mode === 'rpk' && uri.trim().startsWith('coaps+tcp')) fail(`${where}: raw public keys are for coaps:// only (this server's TLS has none)`);
  const account: ServerAccount = {
    uri: uri.trim(),
    securityMode: mode,
    shortServerId: bootstrap ? 0 : integer(input.shortServerId ?? 1, `${where}: shortServerId`, 1, 65534),
    lifetime: bootstrap ? 0 : integer(input.lifetime ?? 86400, `${where}: lifetime`, 1, 0xffffffff),
    binding: bootstrap ? '' : text(input.binding ?? 'U', `${where}: binding`),
    notificationStoring: input.notificationStoring !== false,
  };
  if (!bootstrap && !/^[UMHTSNQ]+$/.test(account.binding)) fail(`${where}: binding must be letters of U, T, S, N, Q, not ${JSON.stringify(account.binding)}`);
  if (mode === 'psk') {
    account.publicKeyOrIdentity = bytes(input.pskIdentity, `${where}: pskIdentity`, true);
    account.secretKey = bytes(input.pskKey, `${where}: pskKey`);
    if (!account.publicKeyOrIdentity || !account.secretKey) fail(`${where}: securityMode psk needs pskIdentity and pskKey`);
  } else if (mode === 'rpk' || mode === 'x509') {
    account.publicKeyOrIdentity = bytes(input.publicKey ?? input.certificate, `${where}: ${mode === 'rpk' ? 'publicKey' : 'certificate'}`);
    account.serverPublicKey = bytes(input.serverPublicKey ?? input.serverCertificate, `${where}: server key or certificate`);
    account.secretKey = bytes(input.privateKey ?? input.secretKey, `${where}: privateKey`);
    if (!account.publicKeyOrIdentity || !account.secretKey) fail(`${where}: securityMode ${mode} needs the device's key or certificate and private key`);
  }
  return account;
}

/** A setting that must be text; anything else (an object from a msg) is refused, not stringified. */
function text(value: unknown, what: string): string {
  if (typeof value !== 'string') fail(`${what} must be text, not ${Array.isArray(value) ? 'an array' : typeof value}`);
  return value;
}

function integer(value: unknown, what: string, min: number, max: number): number {
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isInteger(number) || number < min || number > max) fail(`${what} must be a whole number in ${min}..${max}, not ${JSON.stringify(value)}`);
  return number;
}

/**
 * Reads a bootstrap configuration: {servers: [...], bootstrapServer?, acl?},
 * or one server's fields directly ({uri, shortServerId, lifetime, ...}).
 */
export function parseBootstrapConfig(input: unknown): BootstrapConfig {
  if (!input || typeof input !== 'object' || Array.isArray(input) || Buffer.isBuffer(input)) {
    fail('a bootstrap configuration is an object such as {"uri": "coap://127.0.0.1:5683", "shortServerId": 1}');
  }
  const object = input as Record<string, unknown>;
  const serverList = Array.isArray(object.servers) ? object.servers : object.uri !== undefined || object.serverUri !== undefined ? [object] : undefined;
  if (!serverList || serverList.length === 0) fail('a bootstrap configuration needs at least one server (servers: [...] or uri)');
  const servers = serverList.map((server, index) => {
    if (!server || typeof server !== 'object') fail(`server ${index} is not an object`);
    return parseAccount(server as Record<string, unknown>, `server ${index}`, false);
  });
  const ids = new Set(servers.map((server) => server.shortServerId));
  if (ids.size !== servers.length) fail('two servers share a shortServerId');
  const config: BootstrapConfig = { servers, acl: [] };
  if (object.bootstrapServer !== undefined) {
    if (!object.bootstrapServer || typeof object.bootstrapServer !== 'object') fail('bootstrapServer is not an object');
    config.bootstrapServer = parseAccount(object.bootstrapServer as Record<string, unknown>, 'bootstrapServer', true);
  }
  if (object.acl !== undefined) {
    if (!Array.isArray(object.acl)) fail('acl must be an array of {objectId, instanceId, rights: {shortServerId: bits}, owner}');
    config.acl = object.acl.map((entry: unknown, index: number) => {
      const e = (entry ?? {}) as Record<string, unknown>;
      const rights = e.rights && typeof e.rights === 'object' ? (e.rights as Record<string, unknown>) : fail(`acl ${index}: rights must be an object`);
      return {
        objectId: integer(e.objectId, `acl ${index}: objectId`, 1, 65534),
        instanceId: integer(e.instanceId, `acl ${index}: instanceId`, 0, 65534),
        owner: integer(e.owner ?? servers[0].shortServerId, `acl ${index}: owner`, 1, 65535),
        rights: Object.fromEntries(Object.entries(rights).map(([id, bits]) => [integer(id, `acl ${index}: server id`, 0, 65535), integer(bits, `acl ${index}: rights`, 0, 31)])),
      };
    });
  }
  return config;
}

/** A view for logs, events and the editor: no keys. */
export function describeConfig(config: BootstrapConfig): Record<string, unknown> {
  return {
    servers: config.servers.map((server) => ({
      uri: server.uri,
      securityMode: server.securityMode,
      shortServerId: server.shortServerId,
      lifetime: server.lifetime,
      binding: server.binding,
      ...(server.securityMode === 'psk' ? { pskIdentity: server.publicKeyOrIdentity?.toString('utf8') } : {}),
    })),
    ...(config.bootstrapServer ? { bootstrapServer: { uri: config.bootstrapServer.uri, securityMode: config.bootstrapServer.securityMode } } : {}),
    ...(config.acl.length > 0 ? { acl: config.acl } : {}),
  };
}

function record(path: Lwm2mPath, type: ResourceType, value: unknown): ContentRecord {
  return { path, type, value: coerceValue(value, type, path.toString()) as ResourceValue };
}

/** The Security object instance (/0/{id}) of an account. */
export function securityRecords(instanceId: number, account: ServerAccount, bootstrapServer: boolean): ContentRecord[] {
  const at = (resourceId: number) => Lwm2mPath.of(0, instanceId, resourceId);
  const records = [
    record(at(0), 'string', account.uri),
    record(at(1), 'boolean', bootstrapServer),
    record(at(2), 'integer', SECURITY_MODE_VALUES[account.securityMode]),
    record(at(3), 'opaque', account.publicKeyOrIdentity ?? Buffer.alloc(0)),
    record(at(4), 'opaque', account.serverPublicKey ?? Buffer.alloc(0)),
    record(at(5), 'opaque', account.secretKey ?? Buffer.alloc(0)),
  ];
  if (!bootstrapServer) records.push(record(at(10), 'integer', account.shortServerId));
  return records;
}

/** The Server object instance (/1/{id}) of an LwM2M server account. */
export function serverRecords(instanceId: number, account: ServerAccount): ContentRecord[] {
  const at = (resourceId: number) => Lwm2mPath.of(1, instanceId, resourceId);
  return [
    record(at(0), 'integer', account.shortServerId),
    record(at(1), 'integer', account.lifetime),
    record(at(6), 'boolean', account.notificationStoring),
    record(at(7), 'string', account.binding),
  ];
}

/** An Access Control object instance (/2/{id}). */
export function aclRecords(instanceId: number, entry: AclEntry): ContentRecord[] {
  const at = (resourceId: number) => Lwm2mPath.of(2, instanceId, resourceId);
  return [
    record(at(0), 'integer', entry.objectId),
    record(at(1), 'integer', entry.instanceId),
    ...Object.entries(entry.rights).map(([serverId, bits]) => record(Lwm2mPath.of(2, instanceId, 2, Number(serverId)), 'integer', bits)),
    record(at(3), 'integer', entry.owner),
  ];
}


/** One instance a bootstrap provisions: where, and its values. */
export interface ProvisionedInstance {
  path: Lwm2mPath;
  records: ContentRecord[];
}

/**
 * The instances a configuration provisions, in the order they are written,
 * the same for a bootstrap session and a Bootstrap-Pack: the bootstrap
 * account (into the device's own bootstrap Security instance, bootstrapIds[0],
 * else the first free id), per server its Security instance (the ids the
 * bootstrap accounts do not hold, from 0 up) and its Server instance, then
 * the ACL instances when the device has the Access Control object.
 */
export function provisionedInstances(config: BootstrapConfig, bootstrapIds: readonly number[], withAcl: boolean): ProvisionedInstance[] {
  const instances: ProvisionedInstance[] = [];
  const add = (records: ContentRecord[]) => instances.push({ path: records[0].path.parent(), records });
  let next = 0;
  const freeId = () => {
    while (bootstrapIds.includes(next)) next++;
    return next++;
  };
  if (config.bootstrapServer) {
    const id = bootstrapIds[0] ?? freeId();
    add(securityRecords(id, { ...config.bootstrapServer, shortServerId: 0, lifetime: 0, binding: '', notificationStoring: false }, true));
  }
  for (const [index, account] of config.servers.entries()) {
    add(securityRecords(freeId(), account, false));
    add(serverRecords(index, account));
  }
  if (withAcl) for (const [index, entry] of config.acl.entries()) add(aclRecords(index, entry));
  return instances;
}
