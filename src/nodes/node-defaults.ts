import { ATTRIBUTE_NAMES } from '../lib/lwm2m/requests/write-attributes';

/** An empty setting per notification attribute the runtime accepts: one entry in ATTRIBUTE_NAMES adds a field everywhere. */
const attributeSettings = (): Record<string, string> => Object.fromEntries(ATTRIBUTE_NAMES.map((name) => [name, '']));

/** Where an operation's device and path come from: a text, or a msg, flow, global or env property. */
const target = { endpoint: '', endpointType: 'str', path: '', pathType: 'str' };

/**
 * The default of every property of every node: the one source the runtime
 * (a property missing from a flow means its default), the editor (scripts/build.js
 * writes this into the editor HTML) and the examples (test/node-defaults.test.js) agree on.
 */
export const NODE_DEFAULTS = {
  'lwm2m-server': {
    name: '',
    bindAddress: '0.0.0.0',
    port: 5683,
    /** Empty: no DTLS listener. */
    dtlsPort: '',
    /** CoAP over TCP and over TLS; empty: none. */
    tcpPort: '',
    tlsPort: '',
    security: [] as unknown[],
    serverCertificate: '',
    trustedCertificates: '',
    modelFolder: '',
    awakeTime: 93,
    queueTtl: 300,
    reobserve: true,
    persist: true,
    /** Who may register under a name not in the security list: nosec (anyone), dtls (over DTLS only) or listed (nobody else). */
    unlistedEndpoints: 'nosec',
    /** Longest registration lifetime kept, in seconds (7 days). */
    maxLifetime: 604800,
    /** file (in the user directory) or redis (shared by several instances). */
    store: 'file',
    redisUrl: 'redis://127.0.0.1:6379',
    redisPrefix: 'lwm2m:',
  },
  'lwm2m-events': {
    name: '',
    server: '',
    registered: true,
    updated: true,
    deregistered: true,
    expired: true,
    awake: false,
    sleeping: false,
    send: true,
    rejected: false,
    security: false,
  },
  'lwm2m-read': { name: '', server: '', ...target, format: 'auto', composite: false, raw: false, timeout: '' },
  /** Mode empty: msg.mode, or replace. */
  'lwm2m-write': { name: '', server: '', ...target, mode: '', format: 'auto', timeout: '' },
  'lwm2m-execute': { name: '', server: '', ...target, args: '', timeout: '' },
  'lwm2m-create': { name: '', server: '', ...target, instanceId: '', format: 'auto', timeout: '' },
  'lwm2m-delete': { name: '', server: '', ...target, timeout: '' },
  'lwm2m-discover': { name: '', server: '', ...target, depth: '', timeout: '' },
  'lwm2m-write-attributes': { name: '', server: '', ...target, ...attributeSettings(), timeout: '' },
  'lwm2m-observe': { name: '', server: '', ...target, composite: false, format: 'auto', start: 'msg', ...attributeSettings(), timeout: '' },
  'lwm2m-bootstrap-server': {
    name: '',
    bindAddress: '0.0.0.0',
    port: 5685,
    dtlsPort: '',
    tcpPort: '',
    tlsPort: '',
    serverCertificate: '',
    trustedCertificates: '',
    allowDefault: false,
    /** Lets configurations with keys go to devices that did not authenticate over DTLS or TLS. */
    allowKeysInClear: false,
    defaultAccount: { uri: '', securityMode: 'nosec', shortServerId: 1, lifetime: 86400, binding: 'U', pskIdentity: '' },
    endpoints: [] as unknown[],
    /** file (in the user directory) or redis (shared by several instances). */
    store: 'file',
    redisUrl: 'redis://127.0.0.1:6379',
    redisPrefix: 'lwm2m:',
  },
  'lwm2m-bootstrap': { name: '', server: '', endpoint: '', endpointType: 'str' },
  'lwm2m-bootstrap-events': { name: '', server: '', started: true, finished: true, failed: true },
  'lwm2m-onem2m': {
    name: '',
    server: '',
    cseUrl: 'http://127.0.0.1:8080/cse-in',
    originator: 'CAdmin',
    cseId: '',
    releaseVersion: '3',
    mode: 'transparent',
    notificationBase: '',
    observe: '',
    maxInstances: 10,
  },
  /** Empty settings come from the msg, else the defaults of the campaign (src/nodes/lwm2m-firmware.ts). */
  'lwm2m-firmware': {
    name: '',
    server: '',
    /** "5" (Firmware Update) or "9" (Software Management). */
    object: '5',
    /** update (5); install, activate, deactivate, uninstall (9); empty: msg.action. */
    action: 'update',
    /** Empty: msg.endpoints or msg.endpoint, else every device with the object. */
    endpoint: '',
    endpointType: 'str',
    model: '',
    version: '',
    instanceId: '',
    activate: false,
    /** Empty: msg.delivery, else auto. */
    delivery: 'auto',
    concurrency: '',
    retries: '',
    /** Seconds, as are the download and update timeouts and the poll interval. */
    timeout: '',
    downloadTimeout: '',
    updateTimeout: '',
    pollInterval: '',
    coapUri: '',
    coapsUri: '',
    coapTcpUri: '',
    coapsTcpUri: '',
    httpUri: '',
  },
  'lwm2m-onem2m-events': { name: '', ipe: '', mirrored: false, failed: true, command: true, reachability: true },
};

type NodeType = keyof typeof NODE_DEFAULTS;

type Widen<T> = T extends string ? string : T extends number ? number | string : T extends boolean ? boolean : T;
export type Settings<T extends NodeType> = { [K in keyof (typeof NODE_DEFAULTS)[T]]: Widen<(typeof NODE_DEFAULTS)[T][K]> };

/** A node's settings: what its flow gives, and the default for every property it leaves out. */
export function settingsOf<T extends NodeType>(type: T, def: object): Settings<T> {
  const given = def as Record<string, unknown>;
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(NODE_DEFAULTS[type])) settings[key] = given[key] ?? structuredClone(value);
  return settings as Settings<T>;
}
