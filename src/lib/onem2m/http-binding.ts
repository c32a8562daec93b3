import http from 'node:http';
import https from 'node:https';

/** oneM2M resource types used by the IPE (TS-0004 Table 6.3.4.2.1-1). */
export const ResourceType = {
  AE: 2,
  Container: 3,
  ContentInstance: 4,
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

/** A request that got no oneM2M answer (network, timeout, 5xxx): worth trying again later. */
export class CseUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CseUnreachableError';
  }
}

/**
 * The oneM2M HTTP binding (TS-0009): CREATE is POST with
 * Content-Type application/json;ty=N, RETRIEVE GET, UPDATE PUT, DELETE
 * DELETE; X-M2M-Origin, X-M2M-RI and X-M2M-RVI on every request, the result
 * in X-M2M-RSC.
 */
export class Onem2mClient {
  private requestCounter = 0;
  private readonly base: URL;

  constructor(private readonly options: Onem2mClientOptions) {
    this.base = new URL(options.cseUrl.replace(/\/+$/, ''));
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') throw new Error(`the CSE URL must be http:// or https://, not ${this.base.protocol}`);
  }

  get originator(): string {
    return this.options.originator;
  }

  create(parent: string[], type: number, resource: Record<string, unknown>, originator?: string): Promise<Onem2mResponse> {
    return this.request('POST', parent, originator, resource, type);
  }

  retrieve(target: string[], originator?: string): Promise<Onem2mResponse> {
    return this.request('GET', target, originator);
  }

  update(target: string[], resource: Record<string, unknown>, originator?: string): Promise<Onem2mResponse> {
    return this.request('PUT', target, originator, resource);
  }

  delete(target: string[], originator?: string): Promise<Onem2mResponse> {
    return this.request('DELETE', target, originator);
  }

  /** The URL of a resource below the CSE base, each name escaped. */
  urlOf(target: string[]): URL {
    const url = new URL(this.base.href);
    url.pathname = [url.pathname.replace(/\/+$/, ''), ...target.map(encodeURIComponent)].join('/');
    return url;
  }

  private request(method: string, target: string[], originator: string | undefined, resource?: Record<string, unknown>, type?: number): Promise<Onem2mResponse> {
    const url = this.urlOf(target);
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
    return new Promise((resolve, reject) => {
      const request = transport.request(url, { method, headers, timeout: this.options.timeoutMs ?? 10_000 }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', (error) => reject(new CseUnreachableError(`${method} ${url.pathname}: ${error.message}`)));
        response.on('end', () => {
          const rsc = Number(response.headers['x-m2m-rsc']);
          if (!Number.isInteger(rsc)) {
            reject(new CseUnreachableError(`${method} ${url.pathname}: HTTP ${response.statusCode} without X-M2M-RSC (not a oneM2M CSE?)`));
            return;
          }
          if (rsc >= 5000) {
            reject(new CseUnreachableError(`${method} ${url.pathname}: the CSE answered ${rsc}`));
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
      request.on('timeout', () => request.destroy(new Error(`no answer within ${this.options.timeoutMs ?? 10_000} ms`)));
      request.on('error', (error) => reject(new CseUnreachableError(`${method} ${url.pathname}: ${error.message}`)));
      request.end(body);
    });
  }
}
