import http from 'node:http';
import https from 'node:https';
import { describeStatus } from './response-codes';

/** oneM2M resource types used by the IPE (TS-0004 Table 6.3.4.2.1-1). */
export const ResourceType = {
  AE: 2,
  Container: 3,
  ContentInstance: 4,
  CSEBase: 5,
  Node: 14,
  Subscription: 23,
} as const;

/** Response status codes the IPE acts on (TS-0004 6.6.3). */
export const ResponseStatus = {
  OK: 2000,
  Created: 2001,
  Deleted: 2002,
  Updated: 2004,
  BadRequest: 4000,
  NotFound: 4004,
  OriginatorHasNoPrivilege: 4103,
  Conflict: 4105,
  InternalServerError: 5000,
} as const;

export interface Onem2mClientOptions {
  /** The CSE base, e.g. http://cse.example:8080/cse-in (hierarchical addressing). */
  cseUrl: string;
  /** Default X-M2M-Origin: the IPE's own originator (an AE-ID or CSE-ID). */
  originator: string;
  /** X-M2M-RVI (default "3"). */
  releaseVersion?: string;
  timeoutMs?: number;
  /** An Authorization header value, for CSEs behind HTTP authentication. */
  authorization?: string;
}

export interface Onem2mResponse {
  rsc: number;
  body?: Record<string, unknown>;
}

/** Query parameters of a request, such as the filter criteria of a discovery. */
export type Query = Record<string, string | number | readonly string[]>;

/** The CSE could not be asked (network, timeout, no oneM2M answer) or is busy (HTTP 503, 429): worth trying again later. */
export class CseUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CseUnreachableError';
  }
}

/** The CSE answered, but not what the step needs; 5xxx answers may be tried again, 4xxx not. */
export class CseRefusedError extends Error {
  constructor(
    readonly rsc: number,
    message: string,
  ) {
    super(message);
    this.name = 'CseRefusedError';
  }
}

class StaleConnectionError extends CseUnreachableError {}

const BUSY_HTTP_STATUS = new Set([429, 503]);
/** As many connections as the IPE runs operations at once. */
const MAX_SOCKETS = 4;

/**
 * The oneM2M HTTP binding (TS-0009): CREATE is POST with
 * Content-Type application/json;ty=N, RETRIEVE GET, UPDATE PUT, DELETE
 * DELETE; X-M2M-Origin, X-M2M-RI and X-M2M-RVI on every request, the result
 * in X-M2M-RSC.
 */
export class Onem2mClient {
  private requestCounter = 0;
  private readonly base: URL;
  private readonly agent: http.Agent;

  constructor(private readonly options: Onem2mClientOptions) {
    this.base = new URL(options.cseUrl.replace(/\/+$/, ''));
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') throw new Error(`the CSE URL must be http:// or https://, not ${this.base.protocol}`);
    const Agent = this.base.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  }

  get originator(): string {
    return this.options.originator;
  }

  create(parent: string[], type: number, resource: Record<string, unknown>, originator?: string): Promise<Onem2mResponse> {
    return this.request('POST', parent, originator, resource, type);
  }

  retrieve(target: string[], originator?: string, query?: Query): Promise<Onem2mResponse> {
    return this.request('GET', target, originator, undefined, undefined, query);
  }

  update(target: string[], resource: Record<string, unknown>, originator?: string): Promise<Onem2mResponse> {
    return this.request('PUT', target, originator, resource);
  }

  delete(target: string[], originator?: string): Promise<Onem2mResponse> {
    return this.request('DELETE', target, originator);
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  /** The URL of a resource below the CSE base, each name escaped. */
  urlOf(target: string[], query?: Query): URL {
    const url = new URL(this.base.href);
    url.pathname = [url.pathname.replace(/\/+$/, ''), ...target.map(encodeURIComponent)].join('/');
    for (const [name, value] of Object.entries(query ?? {})) {
      for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(name, String(one));
    }
    return url;
  }

  private async request(method: string, target: string[], originator: string | undefined, resource?: Record<string, unknown>, type?: number, query?: Query): Promise<Onem2mResponse> {
    try {
      return await this.send(method, target, originator, resource, type, query);
    } catch (error) {
      // A kept-alive connection the CSE closed as the request went out: the CSE never saw it (Node's http docs).
      if (!(error instanceof StaleConnectionError)) throw error;
      return this.send(method, target, originator, resource, type, query);
    }
  }

  private send(method: string, target: string[], originator: string | undefined, resource?: Record<string, unknown>, type?: number, query?: Query): Promise<Onem2mResponse> {
    const url = this.urlOf(target, query);
    const body = resource ? Buffer.from(JSON.stringify(resource)) : undefined;
    const headers: Record<string, string> = {
      'X-M2M-Origin': originator ?? this.options.originator,
      'X-M2M-RI': `lwm2m-ipe-${Date.now().toString(36)}-${++this.requestCounter}`,
      'X-M2M-RVI': this.options.releaseVersion ?? '3',
      Accept: 'application/json',
    };
    if (body) {
      headers['Content-Type'] = type === undefined ? 'application/json' : `application/json;ty=${type}`;
      headers['Content-Length'] = String(body.length);
    }
    if (this.options.authorization) headers.Authorization = this.options.authorization;
    const transport = url.protocol === 'https:' ? https : http;
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    const what = `${method} ${url.pathname}`;
    return new Promise((resolve, reject) => {
      const request = transport.request(url, { method, headers, timeout: timeoutMs, agent: this.agent }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', (error) => reject(new CseUnreachableError(`${what}: ${error.message}`)));
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          const rsc = Number(response.headers['x-m2m-rsc']);
          if (BUSY_HTTP_STATUS.has(status)) {
            reject(new CseUnreachableError(`${what}: the CSE is busy (HTTP ${status}${Number.isInteger(rsc) ? `, ${describeStatus(rsc)}` : ''})`));
            return;
          }
          if (!Number.isInteger(rsc)) {
            reject(new CseUnreachableError(`${what}: HTTP ${status} without X-M2M-RSC (not a oneM2M CSE?)`));
            return;
          }
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown> | undefined;
          try {
            parsed = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
          } catch {
            parsed = undefined;
          }
          resolve({ rsc, body: parsed });
        });
      });
      request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      request.on('error', (error: NodeJS.ErrnoException) => {
        const stale = request.reusedSocket && error.code === 'ECONNRESET';
        reject(stale ? new StaleConnectionError(`${what}: ${error.message}`) : new CseUnreachableError(`${what}: ${error.message}`));
      });
      request.end(body);
    });
  }
}
