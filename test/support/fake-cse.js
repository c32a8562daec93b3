'use strict';
const http = require('node:http');
const crypto = require('node:crypto');

const TYPE_KEYS = { 2: 'm2m:ae', 3: 'm2m:cnt', 4: 'm2m:cin', 14: 'm2m:nod', 23: 'm2m:sub' };
const HTTP_STATUS = { 2000: 200, 2001: 201, 2002: 200, 2004: 200, 4000: 400, 4004: 404, 4103: 403, 4105: 409, 4108: 400, 5000: 500, 5204: 500 };

/**
 * A CSE for the tests: the oneM2M HTTP binding (TS-0009) with the
 * primitives the IPE uses — create, retrieve, update, delete, discovery
 * (fu=1 with ty, lbl, lim, ofst) and notify — and the answers a real CSE
 * gives: 4000 without an originator or request id, 4105 for a second AE of
 * the same originator or a name taken, 4103 for an originator that does not
 * own the parent AE, 4004 for missing resources, subscription verification
 * and notifications to nu. It keeps contents as JSON typed them (Mobius turns
 * numbers into text), and can be made to answer what Mobius cannot be made
 * to: busy (HTTP 503) or 5000 for chosen requests (answer()).
 */
class FakeCse {
  static async start(port = 0, options = {}) {
    const cse = new FakeCse(options);
    await cse.listen(port);
    return cse;
  }

  constructor({ base = 'cse-in', cseId = '/id-in', admin = 'CAdmin' } = {}) {
    this.base = base;
    this.cseId = cseId;
    this.admin = admin;
    /** path ('cse-in/meter/3/0') -> {ty, attrs, owner} */
    this.resources = new Map([[base, { ty: 5, attrs: { ri: 'id-in', rn: base, ty: 5, csi: cseId }, owner: admin }]]);
    this.requests = [];
    this.notifications = [];
    /** (request) => a status to answer instead ('busy' for HTTP 503), or undefined. */
    this.override = () => undefined;
    this.server = http.createServer((request, response) => this.handle(request, response));
  }

  listen(port) {
    return new Promise((resolve) => this.server.listen(port, '127.0.0.1', () => {
      this.port = this.server.address().port;
      this.url = `http://127.0.0.1:${this.port}/${this.base}`;
      resolve();
    }));
  }

  /** Stops answering (the port closes), keeping the resource tree: the CSE is unreachable. */
  stop() {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** Answers again on the same port. */
  async restart() {
    this.server = http.createServer((request, response) => this.handle(request, response));
    await this.listen(this.port);
  }

  get(path) {
    return this.resources.get(path)?.attrs;
  }

  children(path) {
    return [...this.resources.keys()].filter((key) => key.startsWith(`${path}/`) && !key.slice(path.length + 1).includes('/')).map((key) => this.resources.get(key).attrs);
  }

  handle(request, response) {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', () => {
      const path = decodeURIComponent(new URL(request.url, 'http://x').pathname).replace(/^\/+|\/+$/g, '');
      const origin = request.headers['x-m2m-origin'];
      const ri = request.headers['x-m2m-ri'];
      const contentType = request.headers['content-type'] ?? '';
      const ty = Number(/ty=(\d+)/.exec(contentType)?.[1]);
      let body;
      try {
        body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
      } catch {
        body = 'unparsable';
      }
      const answer = (rsc, representation) => {
        this.requests.push({ method: request.method, path, origin, ri, rvi: request.headers['x-m2m-rvi'], ty: Number.isNaN(ty) ? undefined : ty, contentType, rsc, body });
        response.writeHead(HTTP_STATUS[rsc] ?? 500, { 'X-M2M-RSC': String(rsc), 'X-M2M-RI': ri ?? '', 'Content-Type': 'application/json' });
        response.end(representation ? JSON.stringify(representation) : undefined);
      };
      if (!origin || !ri) return answer(4000, { 'm2m:dbg': 'X-M2M-Origin and X-M2M-RI are mandatory' });
      const instead = this.override({ method: request.method, path, origin, ty, body });
      if (instead === 'busy') {
        this.requests.push({ method: request.method, path, origin, ri, rsc: 'busy' });
        response.writeHead(503);
        return response.end();
      }
      if (instead !== undefined) return answer(instead);
      const target = this.resources.get(path);
      const query = new URL(request.url, 'http://x').searchParams;
      switch (request.method) {
        case 'POST':
          return this.create(path, target, origin, ty, body, answer);
        case 'GET':
          if (!target) return answer(4004);
          if (query.get('fu') === '1') return answer(2000, { 'm2m:uril': this.discover(path, query) });
          if (!this.allowed(path, origin)) return answer(4103);
          return answer(2000, { [TYPE_KEYS[target.ty] ?? 'm2m:cb']: target.attrs });
        case 'PUT': {
          if (!target) return answer(4004);
          if (!this.allowed(path, origin)) return answer(4103);
          const update = body?.[TYPE_KEYS[target.ty]];
          if (!update || typeof update !== 'object') return answer(4000);
          Object.assign(target.attrs, update, { lt: now() });
          return answer(2004, { [TYPE_KEYS[target.ty]]: target.attrs });
        }
        case 'DELETE':
          if (!target) return answer(4004);
          if (!this.allowed(path, origin)) return answer(4103);
          for (const key of [...this.resources.keys()]) if (key === path || key.startsWith(`${path}/`)) this.resources.delete(key);
          return answer(2002);
        default:
          return answer(4000);
      }
    });
  }

  /** Discovery (TS-0004 fu=1): the structured paths of the resources below path of type ty with any of the labels lbl. */
  discover(path, query) {
    const ty = query.get('ty') === null ? undefined : Number(query.get('ty'));
    const labels = query.getAll('lbl');
    const found = [...this.resources.entries()]
      .filter(([key, resource]) => key.startsWith(`${path}/`) && (ty === undefined || resource.ty === ty))
      .filter(([, resource]) => labels.length === 0 || labels.some((label) => (resource.attrs.lbl ?? []).includes(label)))
      .map(([key]) => key);
    const offset = Number(query.get('ofst') ?? 0);
    return found.slice(offset, query.get('lim') === null ? undefined : offset + Number(query.get('lim')));
  }

  /** The originator may act on a resource when it is the admin or owns the AE the resource is in. */
  allowed(path, origin) {
    if (origin === this.admin) return true;
    const owner = this.resources.get(path)?.owner;
    return owner === origin;
  }

  create(parentPath, parent, origin, ty, body, answer) {
    const key = TYPE_KEYS[ty];
    if (!key || !body?.[key] || typeof body[key] !== 'object') return answer(4000, { 'm2m:dbg': 'resource type and body disagree' });
    if (!parent) return answer(4004);
    const attrs = { ...body[key] };
    let owner = origin;
    if (ty === 2) {
      if (parent.ty !== 5) return answer(4108);
      if (!/^[CS]/.test(origin)) return answer(4000, { 'm2m:dbg': 'an AE originator starts with C or S' });
      if ([...this.resources.values()].some((resource) => resource.ty === 2 && resource.attrs.aei === origin)) return answer(4105, { 'm2m:dbg': 'originator has already registered' });
      attrs.aei = origin;
    } else if (ty === 14) {
      if (parent.ty !== 5) return answer(4108);
    } else {
      if (parent.ty === 5 || !this.allowed(parentPath, origin)) return answer(parent.ty === 5 ? 4108 : 4103);
      if (ty === 4 && parent.ty !== 3) return answer(4108);
      owner = parent.owner;
    }
    const rn = attrs.rn ?? `${ty === 4 ? 'cin' : 'r'}_${crypto.randomBytes(4).toString('hex')}`;
    const path = `${parentPath}/${rn}`;
    if (this.resources.has(path)) return answer(4105, { 'm2m:dbg': 'resource name taken' });
    Object.assign(attrs, { rn, ri: ty === 2 ? origin : `${ty}${crypto.randomBytes(6).toString('hex')}`, pi: parent.attrs.ri, ty, ct: now(), lt: now() });
    const finish = () => {
      this.resources.set(path, { ty, attrs, owner });
      if (ty === 4) this.afterInstance(parentPath, parent, attrs);
      answer(2001, { [key]: attrs });
    };
    if (ty !== 23) return finish();
    // Subscription verification (TS-0001 10.2.11.14): the notification target must agree.
    this.notify(attrs.nu[0], { 'm2m:sgn': { vrq: true, sur: `/${path}`, cr: origin } }).then(
      (rsc) => (rsc === 2000 ? finish() : answer(5204)),
      () => answer(5204),
    );
  }

  afterInstance(parentPath, parent, instance) {
    const mni = parent.attrs.mni;
    const instances = [...this.resources.entries()].filter(([key, resource]) => resource.ty === 4 && key.startsWith(`${parentPath}/`) && !key.slice(parentPath.length + 1).includes('/'));
    if (mni !== undefined) for (const [key] of instances.slice(0, Math.max(0, instances.length - mni))) this.resources.delete(key);
    for (const [key, resource] of this.resources) {
      if (resource.ty !== 23 || !key.startsWith(`${parentPath}/`) || key.slice(parentPath.length + 1).includes('/')) continue;
      if (!(resource.attrs.enc?.net ?? [1]).includes(3)) continue;
      this.notify(resource.attrs.nu[0], { 'm2m:sgn': { nev: { rep: { 'm2m:cin': instance }, net: 3 }, sur: `/${key}` } }).catch(() => undefined);
    }
  }

  /** POSTs a notification to a target URL; resolves with the X-M2M-RSC it answers. */
  notify(url, body) {
    const payload = Buffer.from(JSON.stringify(body));
    this.notifications.push({ url, body });
    return new Promise((resolve, reject) => {
      const request = http.request(url, {
        method: 'POST',
        headers: { 'X-M2M-Origin': this.cseId, 'X-M2M-RI': `notify-${crypto.randomBytes(4).toString('hex')}`, 'X-M2M-RVI': '3', 'Content-Type': 'application/json', 'Content-Length': payload.length },
      }, (response) => {
        response.resume();
        response.on('end', () => resolve(Number(response.headers['x-m2m-rsc'])));
      });
      request.on('error', reject);
      request.end(payload);
    });
  }
}

function now() {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '');
}

/** Creates a command contentInstance as a oneM2M application would (with the AE's originator). */
async function createCommand(cse, aePath, originator, command) {
  const payload = Buffer.from(JSON.stringify({ 'm2m:cin': { con: JSON.stringify(command) } }));
  return new Promise((resolve, reject) => {
    const request = http.request(`http://127.0.0.1:${cse.port}/${aePath}/commands`, {
      method: 'POST',
      headers: { 'X-M2M-Origin': originator, 'X-M2M-RI': `app-${Date.now()}`, 'X-M2M-RVI': '3', 'Content-Type': 'application/json;ty=4', 'Content-Length': payload.length },
    }, (response) => {
      response.resume();
      response.on('end', () => resolve(Number(response.headers['x-m2m-rsc'])));
    });
    request.on('error', reject);
    request.end(payload);
  });
}

module.exports = { FakeCse, createCommand };
